import { createInterface } from 'node:readline/promises';
import { CliError, exitCodes } from './errors.ts';

/** Where the CLI writes: stdout for results, stderr for progress and prompts. Swappable in tests. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** True when a human can answer a prompt. */
  interactive: boolean;
  ask(question: string): Promise<string>;
}

export function processIo(): Io {
  return {
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(`${text}\n`),
    interactive: Boolean(process.stdin.isTTY && process.stderr.isTTY),
    async ask(question) {
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      try {
        return await rl.question(question);
      } finally {
        rl.close();
      }
    },
  };
}

/**
 * A destructive command goes ahead only with `--yes` or a typed "yes". Without a terminal
 * and without `--yes` it refuses: a script must say what it means.
 */
export async function confirm(io: Io, what: string, yes: boolean): Promise<void> {
  if (yes) return;
  if (!io.interactive)
    throw new CliError(`refusing to ${what} without confirmation: pass --yes`, exitCodes.refused);
  const answer = await io.ask(`${what}? Type "yes" to continue: `);
  if (answer.trim().toLowerCase() !== 'yes')
    throw new CliError('aborted: nothing was changed', exitCodes.refused);
}

export function formatBytes(bytes: number | null): string {
  if (bytes === null) return 'n/a';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatSeconds(seconds: number | null): string {
  if (seconds === null) return 'n/a';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function formatPercent(ratio: number | null, digits = 1): string {
  return ratio === null ? 'n/a' : `${(ratio * 100).toFixed(digits)} %`;
}
