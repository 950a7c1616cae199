export { type ExitCode, exitCodes } from './errors.ts';
export { run, USAGE, VERSION } from './main.ts';
