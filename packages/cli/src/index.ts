export { type ExitCode, exitCodes } from './errors.ts';
export type { Io } from './io.ts';
export { run, USAGE, VERSION } from './main.ts';
