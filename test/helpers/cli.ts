// Runs the real command line (bin/order-webhooks.js) as a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './poll.ts';

export const BIN = fileURLToPath(new URL('../../bin/order-webhooks.js', import.meta.url));

/** Writes a config file to a temp folder; a string is written as it is (to test bad JSON). */
export function writeConfig(config: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'order-webhooks-test-'));
  const path = join(dir, 'config.json');
  writeFileSync(path, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
  return path;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion. */
export function run(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`order-webhooks ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // 'exit' can come before the pipes are drained; 'close' follows once they are.
      child.on('close', () => resolve({ code, signal, stdout, stderr }));
    });
  });
}

/** Runs a command that keeps running (`start`), waits until its output shows `text`, then stops it with SIGTERM. */
export function runUntil(args: string[], text: string | RegExp, env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const seen = () => (typeof text === 'string' ? (stdout + stderr).includes(text) : text.test(stdout + stderr));
    const onData = () => {
      if (child.exitCode === null && child.signalCode === null && seen()) child.kill('SIGTERM');
    };
    child.stdout.on('data', (d) => {
      stdout += d;
      onData();
    });
    child.stderr.on('data', (d) => {
      stderr += d;
      onData();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`order-webhooks ${args.join(' ')} did not show ${String(text)} and exit in ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      child.on('close', () => resolve({ code, signal, stdout, stderr }));
    });
  });
}

function cleanEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ...extra };
  return env;
}

export interface ServiceProcess {
  child: ChildProcess;
  output(): string;
  waitForLog(text: string | RegExp, timeoutMs?: number): Promise<void>;
  /** SIGTERM and wait for exit. */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** kill -9. */
  kill(): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `order-webhooks start` and waits until it says it has started. */
export async function startService(configPath: string, env: NodeJS.ProcessEnv = {}, waitForStart = true): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [BIN, 'start', '--config', configPath], {
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Never outlive the test process, whatever way it ends.
  const reap = () => child.kill('SIGKILL');
  process.on('exit', reap);
  child.on('exit', () => process.removeListener('exit', reap));
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const service: ServiceProcess = {
    child,
    exited,
    output: () => output,
    waitForLog: async (text, timeoutMs = 15_000) => {
      await waitFor(() => (typeof text === 'string' ? output.includes(text) : text.test(output)) || child.exitCode !== null, {
        timeoutMs,
        what: `log ${String(text)}`,
      });
      if (!(typeof text === 'string' ? output.includes(text) : text.test(output))) {
        throw new Error(`service exited (${child.exitCode}) before logging ${String(text)}:\n${output}`);
      }
    },
    stop: async (timeoutMs = 20_000) => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  // Generous: on a loaded 2-core machine a start can take many seconds.
  if (waitForStart) await service.waitForLog('"msg":"started"', 60_000);
  return service;
}
