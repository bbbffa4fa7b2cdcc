// The service's logger: pino, JSON lines on stdout; on a terminal, the same lines made readable by
// pino-pretty (colours unless NO_COLOR). Secrets are redacted by path as a second line of defence;
// the first is never putting them in a log call.
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

const REDACT = [
  'secret',
  'sslKeyPassword',
  'password',
  'key',
  '*.secret',
  '*.sslKeyPassword',
  '*.password',
  '*.key',
  'webHook.secret',
  'webHook.sslKeyPassword',
  'webHook.key',
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    { level, base: { name: 'order-webhooks' }, redact: { paths: REDACT, censor: '[redacted]' } },
    destination ??
      (process.stdout.isTTY
        ? pretty({ destination: 1, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name' })
        : pino.destination({ fd: 1, sync: false })),
  );
}
