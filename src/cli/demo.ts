// `order-webhooks demo` (and `npm start` without a config): the whole pipeline on this machine.
import type { Command } from 'commander';
import { runDemo } from '../demo/demo.ts';
import { DemoFailed, DemoInterrupted } from '../errors.ts';
import { reporting } from './exit.ts';

export function demoCommand(program: Command): void {
  program
    .command('demo')
    .description('show the whole pipeline on this machine: embedded PostgreSQL, sample orders, a receiver; removes it all at the end')
    .action(demo);
}

export async function demo(): Promise<void> {
  const controller = new AbortController();
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  // Every signal only aborts: the demo then stops and removes whatever it had started.
  const onSignal = () => controller.abort();
  for (const signal of signals) process.on(signal, onSignal);
  try {
    await reporting('demo', async () => {
      try {
        const result = await runDemo({ print: (line) => process.stdout.write(`${line}\n`), signal: controller.signal });
        if (result.delivered !== result.expected || result.events !== result.expected || result.badSignatures > 0) {
          throw new DemoFailed(
            `${result.delivered} of ${result.expected} events delivered (${result.events} in the outbox, ${result.badSignatures} bad signatures)`,
          );
        }
      } catch (error) {
        if (error instanceof DemoInterrupted) throw new DemoInterrupted('interrupted; everything it started is stopped and removed');
        throw error;
      }
    });
  } finally {
    for (const signal of signals) process.removeListener(signal, onSignal);
    // Everything the demo started is stopped by now. When PostgreSQL went first (Ctrl-C in a
    // terminal reaches it too), pg-listen keeps retrying its connection after close(): do not let
    // that retry loop hold the process for minutes.
    setTimeout(() => process.exit(), 2000).unref();
  }
}
