// Commands run as a new user's shell runs them: no npm_* variables of an `npm test` around us (a
// nested npm would take the worktree for its project) and no node_modules/.bin on PATH.
import { execFile } from 'node:child_process';
import { delimiter } from 'node:path';

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

export function shellEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const path = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => !dir.includes('node_modules'))
    .join(delimiter);
  return { PATH: path, HOME: process.env.HOME, ...extra };
}

/** Runs a command to completion (or kills it after `timeoutMs`); never rejects. */
export function exec(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = shellEnv(), timeoutMs = 120_000): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Whether a command is on PATH; for tests that skip, saying why, when a tool is missing. */
export async function available(command: string, args = ['--version']): Promise<boolean> {
  const ran = await exec(command, args, process.cwd(), shellEnv(), 30_000);
  return ran.code === 0;
}
