// The processes a bench run starts: the receiver, the service (the real CLI) and the got loop.
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { SinkMessage, SinkRequest } from './otlpSink.ts';
import type { Arrival, ReceiverMessage, ReceiverRequest } from './receiver.ts';

const BIN = fileURLToPath(new URL('../bin/order-webhooks.js', import.meta.url));
/** The node flags of the bin's shebang (`#!/usr/bin/env -S node …`): the service is measured as shipped. */
const SHIPPED_NODE_ARGS = /^#!\/usr\/bin\/env -S node (.*)$/m.exec(readFileSync(BIN, 'utf8'))?.[1]?.split(' ') ?? [];
/**
 * How the service is started (BENCH_SERVICE_START): `bin` (default) is node with the shebang's
 * flags, the process that `./bin/order-webhooks.js` and npx make; `node` is plain `node
 * bin/order-webhooks.js`, as a Dockerfile or a process manager often runs it; `npm` is `npm start`,
 * whose npm stays beside the service.
 */
const START = process.env.BENCH_SERVICE_START ?? 'bin';
const PROJECT = fileURLToPath(new URL('..', import.meta.url));
const RECEIVER = fileURLToPath(new URL('./receiver.ts', import.meta.url));
const GOT_LOOP = fileURLToPath(new URL('./gotLoop.ts', import.meta.url));
const OTLP_SINK = fileURLToPath(new URL('./otlpSink.ts', import.meta.url));

/** CPU seconds a process has used so far (user + system). */
export function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/** CPU seconds the whole machine has been busy so far, all cores together. */
export function machineCpuSeconds(): number {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = ticks.map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / 100;
}

export interface ReceiverProcess {
  url: string;
  cpuSeconds(): number;
  /** Starts a new phase: forgets what arrived, answers `status` (200) after `delayMs`. */
  phase(delayMs?: number, status?: number): Promise<void>;
  /** From now on answers `status`, keeping what arrived. */
  answer(status: number): Promise<void>;
  count(): Promise<number>;
  /** Requests answered 200 so far in this phase, and those answered with another status. */
  counts(): Promise<{ accepted: number; rejected: number }>;
  collect(): Promise<{ arrivals: Arrival[]; badSignatures: number; other: number }>;
  close(): void;
}

export async function startReceiver(secret: string): Promise<ReceiverProcess> {
  const child = fork(RECEIVER, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, BENCH_SECRET: secret }, stdio: 'inherit' });
  const waiting: ((message: ReceiverMessage) => void)[] = [];
  child.on('message', (message: ReceiverMessage) => waiting.shift()?.(message));
  const ask = <T extends ReceiverMessage['type']>(request: ReceiverRequest | null, type: T) =>
    new Promise<Extract<ReceiverMessage, { type: T }>>((resolve, reject) => {
      waiting.push((message) =>
        message.type === type ? resolve(message as never) : reject(new Error(`receiver said ${message.type}, expected ${type}`)),
      );
      if (request) child.send(request);
    });
  const { port } = await ask(null, 'listening');
  return {
    url: `http://127.0.0.1:${port}/automation`,
    cpuSeconds: () => cpuSecondsOf(child.pid!),
    phase: async (delayMs = 0, status = 200) => void (await ask({ type: 'phase', delayMs, status }, 'phase')),
    answer: async (status) => void (await ask({ type: 'answer', status }, 'answer')),
    count: async () => (await ask({ type: 'count' }, 'count')).count,
    counts: async () => {
      const { count, rejected } = await ask({ type: 'count' }, 'count');
      return { accepted: count, rejected };
    },
    collect: () => ask({ type: 'collect' }, 'collect'),
    close: () => child.disconnect(),
  };
}

export interface OtlpSinkProcess {
  /** The base URL, for `telemetry.otlp.endpoint`. */
  url: string;
  cpuSeconds(): number;
  reset(): Promise<void>;
  count(): Promise<{ spans: number; exports: number }>;
  close(): void;
}

/** The collector stand-in for W2 with tracing on (otlpSink.ts). */
export async function startOtlpSink(): Promise<OtlpSinkProcess> {
  const child = fork(OTLP_SINK, [], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  const waiting: ((message: SinkMessage) => void)[] = [];
  child.on('message', (message: SinkMessage) => waiting.shift()?.(message));
  const ask = <T extends SinkMessage['type']>(request: SinkRequest | null, type: T) =>
    new Promise<Extract<SinkMessage, { type: T }>>((resolve, reject) => {
      waiting.push((message) =>
        message.type === type ? resolve(message as never) : reject(new Error(`sink said ${message.type}, expected ${type}`)),
      );
      if (request) child.send(request);
    });
  const { port } = await ask(null, 'listening');
  return {
    url: `http://127.0.0.1:${port}`,
    cpuSeconds: () => cpuSecondsOf(child.pid!),
    reset: async () => void (await ask({ type: 'reset' }, 'reset')),
    count: async () => {
      const { spans, exports } = await ask({ type: 'count' }, 'count');
      return { spans, exports };
    },
    close: () => child.disconnect(),
  };
}

export interface ServiceProcess {
  pid: number;
  /** Resident set size now (VmRSS), in MB. */
  rssMb(): number;
  /** When it logged "started". */
  startedAt: number;
  /** Peak resident set size so far (VmHWM), in MB. */
  peakRssMb(): number;
  /** The same for the processes that started it and wait for it (npm and its shell), summed. */
  launcherPeakRssMb(): number;
  /** CPU seconds used so far (user + system). */
  cpuSeconds(): number;
  output(): string;
  stop(): Promise<void>;
}

/** VmHWM of a process, in MB. */
function peakRssOf(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

/** The chain of processes below `pid` down to its deepest descendant (npm → sh → node). */
function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      parents.set(Number(name), Number(readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]));
    } catch {
      // it exited meanwhile
    }
  }
  const chain: number[] = [];
  for (let current = pid; ; ) {
    const child = [...parents].find(([, parent]) => parent === current)?.[0];
    if (child === undefined) return chain;
    chain.push(child);
    current = child;
  }
}

function spawnService(configPath: string, extraNodeArgs: string[]): ChildProcess {
  const args = ['start', '--config', configPath];
  const stdio: ['ignore', 'pipe', 'pipe'] = ['ignore', 'pipe', 'pipe'];
  if (START === 'npm') {
    if (extraNodeArgs.length) throw new Error('BENCH_SERVICE_NODE_ARGS cannot reach the service under npm start');
    return spawn('npm', ['start', '--silent', '--', ...args], { cwd: PROJECT, stdio });
  }
  const shipped = START === 'node' ? [] : SHIPPED_NODE_ARGS;
  return spawn(process.execPath, [...shipped, ...extraNodeArgs, BIN, ...args], { stdio });
}

export const SERVICE_START = START;

export async function startService(configPath: string, extraNodeArgs: string[] = []): Promise<ServiceProcess> {
  const child = spawnService(configPath, extraNodeArgs);
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const startedAt = await new Promise<number>((resolve, reject) => {
    // npm start builds first (prestart).
    const seconds = START === 'npm' ? 120 : 20;
    const timer = setTimeout(() => reject(new Error(`service did not start in ${seconds} s:\n${output}`)), seconds * 1000);
    const check = () => {
      if (output.includes('"msg":"started"')) {
        clearTimeout(timer);
        resolve(performance.timeOrigin + performance.now());
      }
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`service exited (${code}) before starting:\n${output}`));
    });
  });
  // Under npm the service is the last of npm's descendants; npm and its shell wait beside it.
  const chain = START === 'npm' ? [child.pid!, ...descendants(child.pid!)] : [child.pid!];
  const pid = chain.at(-1)!;
  return {
    pid,
    startedAt,
    rssMb: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024,
    peakRssMb: () => peakRssOf(pid),
    launcherPeakRssMb: () => chain.slice(0, -1).reduce((sum, launcher) => sum + peakRssOf(launcher), 0),
    cpuSeconds: () => cpuSecondsOf(pid),
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGTERM'); // npm passes it on too late
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
      // For profiling: BENCH_SERVICE_OUTPUT=1 shows what the service printed last.
      if (process.env.BENCH_SERVICE_OUTPUT) process.stderr.write(`service ${pid} output (tail):\n${output.slice(-4000)}\n`);
    },
  };
}

export interface GotLoopResult {
  requests: number;
  failed: number;
  seconds: number;
  perSecond: number;
  /** The loop process's CPU per request, ms. */
  cpuMsPerRequest: number;
}

/** `plain`: got without the Sender's emptyCacheOptions hook (src/delivery/sender.ts). */
export function runGotLoop(url: string, requests: number, concurrency: number, secret: string, plain = false): Promise<GotLoopResult> {
  return new Promise((resolve, reject) => {
    const args = ['--import', 'tsx', GOT_LOOP, url, String(requests), String(concurrency), ...(plain ? ['plain'] : [])];
    const child = spawn(process.execPath, args, {
      env: { ...process.env, BENCH_SECRET: secret },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(JSON.parse(out) as GotLoopResult);
      else reject(new Error(`got loop exited with ${code}: ${out}`));
    });
  });
}
