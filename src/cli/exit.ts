// Exit codes and the one place that maps an error to one: 0 done, 1 failed while running or
// something needs attention, 2 bad usage, config or set-up (fix it and run again), 130 interrupted.
import { AppError, SETUP_CODES } from '../errors.ts';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** Interrupted (Ctrl-C): 128 + SIGINT, as shells report it. */
export const EXIT_INTERRUPTED = 130;

/** A command's failure: its one line for stderr and its exit code. */
export class CommandFailure extends Error {
  override name = 'CommandFailure';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export function fail(message: string, exitCode: number): never {
  throw new CommandFailure(message, exitCode);
}

export function exitCodeFor(error: unknown): number {
  if (error instanceof CommandFailure) return error.exitCode;
  if (error instanceof AppError) {
    if (error.code === 'DEMO_INTERRUPTED') return EXIT_INTERRUPTED;
    return SETUP_CODES.has(error.code) ? EXIT_USAGE : EXIT_FAILURE;
  }
  return EXIT_FAILURE;
}

/** Runs a command's work; what it throws becomes one line, `<what>: <message>`, and its exit code. */
export async function reporting<T>(what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof CommandFailure) throw error;
    fail(`${what}: ${error instanceof Error ? error.message : String(error)}`, exitCodeFor(error));
  }
}
