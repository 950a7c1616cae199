/**
 * `--config <file>` / `--example <name>` on any entry point, over WALCACHE_CONFIG /
 * WALCACHE_EXAMPLE: what a process serves. Returned as environment entries so one parse
 * (envSchema) sees them all.
 */
export function configArgs(argv: readonly string[] = process.argv.slice(2)): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    for (const [flag, variable] of [
      ['--config', 'WALCACHE_CONFIG'],
      ['--example', 'WALCACHE_EXAMPLE'],
    ] as const) {
      if (arg === flag && argv[i + 1] !== undefined) out[variable] = argv[i + 1]!;
      else if (arg.startsWith(`${flag}=`)) out[variable] = arg.slice(flag.length + 1);
    }
  }
  return out;
}
