import { spawn } from 'node:child_process';

export interface Reaper {
  /** The server was stopped by its owner: the reaper exits without signalling anything. */
  release(): void;
}

/**
 * The reaper, in sh: it waits on a pipe from its owner; a line `release` means the owner
 * stops the server itself. End of file means the owner died, however it died (SIGKILL
 * included, the kernel closes the pipe): then it sends the server its stop signal and,
 * why 3 s, SIGKILL if it is still there by then (a fast shutdown takes well under a second;
 * `npm start` promises nothing of it is left 5 s after a kill -9).
 */
const SCRIPT = `
while read -r line; do [ "$line" = release ] && exit 0; done
kill -"$2" "$1" 2>/dev/null || exit 0
i=0
while [ $i -lt 30 ] && kill -0 "$1" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
kill -KILL "$1" 2>/dev/null
exit 0
`;

/**
 * Makes sure the server process `pid` does not outlive this process. Native servers
 * (postgres, redis-server) have no parent-death watch of their own, and a server started
 * detached (out of the terminal's process group, so a Ctrl-C does not reach it) does not
 * even die with its group. A shell costs ~1 MB; a node reaper would cost ~40.
 */
export function armReaper(pid: number, signal: NodeJS.Signals): Reaper {
  const child = spawn('sh', ['-c', SCRIPT, 'walcache-reaper', String(pid), signal.replace(/^SIG/, '')], {
    // Its own process group: the terminal's Ctrl-C must not kill the reaper before the owner
    // has stopped the server in order.
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  child.on('error', () => {});
  child.stdin.on('error', () => {});
  // Neither the reaper nor its pipe may keep the owner alive.
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  return {
    release() {
      if (!child.stdin.writable) return;
      child.stdin.end('release\n');
    },
  };
}
