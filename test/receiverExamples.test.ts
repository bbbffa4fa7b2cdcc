// The example receivers of docs/receivers/ (Python, standard library only; Java, one source file
// run with `java Receiver.java`), each run as a real process: the published vectors sent to it over
// HTTP, then real webhooks from the service, verified and deduplicated, and refused when the
// service signs with another secret.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run } from './helpers/cli.ts';
import { waitFor } from './helpers/poll.ts';
import { outbox, stacksClosedAfter } from './helpers/stack.ts';
import { exec, shellEnv } from './helpers/shell.ts';
import { VECTORS } from './helpers/vectors.ts';

const RECEIVERS = fileURLToPath(new URL('../docs/receivers/', import.meta.url));
const { body, xSignature: xs, standardWebhooks: sw } = VECTORS;
const ORDER = JSON.parse(body) as { orderId: string; eventType: string };
/** Enough for the published vectors' old timestamps: ten years. */
const LONG_AGO = String(10 * 365 * 24 * 3600);

interface Report {
  verified: boolean;
  code?: string;
  duplicate?: boolean;
  eventId?: string | null;
  attempt?: number | null;
  orderId?: string;
  eventType?: string;
  /** The Java receiver hands on the raw body. */
  body?: string;
}

interface RunningReceiver {
  url: string;
  reports: Report[];
  /** POSTs a body with headers; the answer's status and the line the receiver printed for it. */
  post(text: string, headers: Record<string, string>): Promise<{ status: number; report: Report }>;
  stop(): Promise<void>;
}

interface Language {
  name: string;
  command: string;
  args: string[];
  /** Why this machine cannot run it, or undefined when it can. */
  missing(): Promise<string | undefined>;
}

const LANGUAGES: Language[] = [
  {
    name: 'Python',
    command: 'python3',
    args: ['receiver.py'],
    missing: async () => {
      const ran = await exec('python3', ['-c', 'import sys; print(sys.version_info >= (3, 8))'], RECEIVERS);
      if (ran.code !== 0) return 'python3 is not installed';
      return ran.stdout.trim() === 'True' ? undefined : 'python3 is older than 3.8';
    },
  },
  {
    name: 'Java',
    command: 'java',
    args: ['Receiver.java'],
    missing: async () => {
      const ran = await exec('java', ['-version'], RECEIVERS);
      if (ran.code !== 0) return 'java is not installed';
      const major = Number(/version "(\d+)/.exec(ran.stderr)?.[1] ?? 0);
      return major >= 17 ? undefined : `java is ${major}, not 17 or later`;
    },
  },
];

async function startExample(language: Language, env: Record<string, string>): Promise<RunningReceiver> {
  const child: ChildProcess = spawn(language.command, language.args, {
    cwd: RECEIVERS,
    env: shellEnv({ PORT: '0', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const reap = () => child.kill('SIGKILL');
  process.on('exit', reap);
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => lines.push(JSON.parse(line)));
  // Java compiles the file first: slow on a busy machine.
  const listening = await waitFor(() => lines[0]?.listening ?? (child.exitCode !== null ? `exited: ${stderr}` : undefined), {
    timeoutMs: 90_000,
    what: `the ${language.name} receiver to listen`,
  });
  assert.match(String(listening), /^http:\/\/127\.0\.0\.1:\d+$/, String(listening));
  const url = `${listening}/automation`;
  const reports = lines as unknown as Report[];
  return {
    url,
    get reports() {
      return reports.slice(1);
    },
    async post(text, headers) {
      const before = reports.length;
      const response = await fetch(url, { method: 'POST', body: text, headers: { 'content-type': 'application/json', ...headers } });
      await waitFor(() => reports.length > before, { what: `the ${language.name} receiver's report` });
      return { status: response.status, report: reports[before]! };
    },
    async stop() {
      process.removeListener('exit', reap);
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** The request the published vectors describe: both signatures over the same body. */
const vectorHeaders = {
  'X-Signature': xs.hex,
  'X-Event-Id': sw.id,
  'X-Event-Attempt': '1',
  'webhook-id': sw.id,
  'webhook-timestamp': String(sw.timestamp),
  'webhook-signature': sw.signature,
};

for (const language of LANGUAGES) {
  const why = await language.missing();
  const title = `${language.name} receiver (docs/receivers/${language.args[0]})${why ? `: SKIPPED, ${why}` : ''}`;

  describe(title, { skip: why }, () => {
    const running: RunningReceiver[] = [];
    const start = async (env: Record<string, string>) => {
      const receiver = await startExample(language, env);
      running.push(receiver);
      return receiver;
    };
    after(async () => {
      for (const receiver of running) await receiver.stop();
    });
    const eventOf = (report: Report) =>
      language.name === 'Java' ? JSON.parse(report.body!) : { orderId: report.orderId, eventType: report.eventType };

    it('verifies the published vectors: X-Signature (hex) and Standard Webhooks together, and refuses what differs', async () => {
      const receiver = await start({ WEBHOOK_SECRET: xs.secret, WEBHOOK_STANDARD_SECRETS: sw.secret, WEBHOOK_TOLERANCE_SECONDS: LONG_AGO });
      const first = await receiver.post(body, vectorHeaders);
      assert.equal(first.status, 204, JSON.stringify(first.report));
      assert.equal(first.report.verified, true);
      assert.equal(first.report.duplicate, false);
      assert.equal(first.report.eventId, sw.id);
      assert.equal(first.report.attempt, 1);
      assert.deepEqual(eventOf(first.report), ORDER);

      const again = await receiver.post(body, { ...vectorHeaders, 'X-Event-Attempt': '2' });
      assert.equal(again.status, 204, 'a duplicate is answered 2xx: it was processed');
      assert.equal(again.report.duplicate, true);

      const refused = async (text: string, headers: Record<string, string>, code: string) => {
        const { status, report } = await receiver.post(text, headers);
        assert.deepEqual([status, report.verified, report.code], [401, false, code], JSON.stringify(headers));
      };
      const { 'X-Signature': _x, ...withoutX } = vectorHeaders;
      await refused(`${body} `, vectorHeaders, 'SIGNATURE_MISMATCH');
      await refused(body, { ...vectorHeaders, 'X-Signature': xs.hex.replace('c2', 'c3') }, 'SIGNATURE_MISMATCH');
      await refused(body, { ...vectorHeaders, 'X-Signature': xs.base64 }, 'SIGNATURE_MISMATCH');
      await refused(body, withoutX, 'HEADER_MISSING');
      await refused(body, { ...vectorHeaders, 'webhook-timestamp': String(sw.timestamp + 1) }, 'SIGNATURE_MISMATCH');
      await refused(body, { ...vectorHeaders, 'webhook-timestamp': 'soon' }, 'TIMESTAMP_INVALID');
      await refused(body, { ...vectorHeaders, 'webhook-signature': sw.both.split(' ')[1]! }, 'SIGNATURE_MISMATCH');
      await refused(body, { ...vectorHeaders, 'X-Event-Id': 'another-event' }, 'EVENT_ID_MISMATCH');
    });

    it('verifies the base64 vector, the rotation vector with either secret, and refuses an old timestamp', async () => {
      const base64 = await start({ WEBHOOK_SECRET: xs.secret, WEBHOOK_SIGNATURE_ENCODING: 'base64' });
      assert.equal((await base64.post(body, { 'X-Signature': xs.base64, 'X-Event-Id': 'e1' })).status, 204);
      assert.equal((await base64.post(body, { 'X-Signature': xs.hex, 'X-Event-Id': 'e1' })).report.code, 'SIGNATURE_MISMATCH');

      // Only the new secret of a rotation: the request signed with both verifies; one signed with the old alone does not.
      const rotated = await start({ WEBHOOK_STANDARD_SECRETS: sw.next, WEBHOOK_TOLERANCE_SECONDS: LONG_AGO });
      const { 'X-Signature': _x, ...standard } = vectorHeaders;
      const both = await rotated.post(body, { ...standard, 'webhook-signature': sw.both });
      assert.deepEqual([both.status, both.report.verified, both.report.eventId], [204, true, sw.id]);
      assert.equal((await rotated.post(body, standard)).report.code, 'SIGNATURE_MISMATCH');

      // X-Signature during a change of webHook.secret: the old secret still verifies.
      const changing = await start({ WEBHOOK_SECRET: 'the new secret', WEBHOOK_OLD_SECRET: xs.secret });
      assert.equal((await changing.post(body, { 'X-Signature': xs.hex, 'X-Event-Id': 'e2' })).status, 204);

      // The default tolerance, five minutes: the published timestamp is a replay today.
      const strict = await start({ WEBHOOK_STANDARD_SECRETS: sw.secret });
      assert.equal((await strict.post(body, standard)).report.code, 'TIMESTAMP_TOO_OLD');
    });

    describe('real webhooks from the service', () => {
      const createStack = stacksClosedAfter();

      it('verified and processed once, a replay dropped as a duplicate, another secret refused', async () => {
        const secrets = { secret: 'receiver-example-secret', standardWebhooks: { secrets: [sw.next] } };
        const receiver = await start({ WEBHOOK_SECRET: secrets.secret, WEBHOOK_STANDARD_SECRETS: sw.next });
        const stack = await createStack(`receiver_${language.name}`, { webHook: { ...secrets, endpoint: receiver.url } });
        await stack.db.query("INSERT INTO orders (state) VALUES ('created')");
        const [row] = await waitFor(
          async () => {
            const rows = await outbox(stack.db);
            return rows.length === 1 && rows[0]!.status === 'delivered' ? rows : undefined;
          },
          { what: 'the event delivered' },
        );
        assert.equal(receiver.reports.length, 1);
        const [report] = receiver.reports;
        assert.equal(report!.verified, true);
        assert.equal(report!.duplicate, false);
        assert.equal(report!.eventId, row!.event_id);
        assert.equal(report!.attempt, 1);
        assert.deepEqual(eventOf(report!), JSON.parse(row!.body));

        // An operator's replay sends the same event id: the receiver answers 2xx without processing it again.
        const replayed = await run(['replay', '--event', row!.event_id, '--config', stack.configPath]);
        assert.equal(replayed.code, 0, replayed.stderr);
        await waitFor(() => receiver.reports.length === 2, { what: 'the replay' });
        assert.deepEqual(
          [receiver.reports[1]!.verified, receiver.reports[1]!.duplicate, receiver.reports[1]!.eventId],
          [true, true, row!.event_id],
        );

        // The service restarted with another secret: its webhooks are refused, and stay pending.
        await stack.service!.stop();
        const webHook = { ...stack.config.webHook, secret: 'not-the-receivers', retry: { delays: ['PT1H'] } };
        writeFileSync(stack.configPath, JSON.stringify({ ...stack.config, webHook }));
        await stack.start();
        await stack.db.query("INSERT INTO orders (state) VALUES ('created')");
        await waitFor(() => receiver.reports.length >= 3, { what: 'the refused webhook' });
        assert.deepEqual([receiver.reports[2]!.verified, receiver.reports[2]!.code], [false, 'SIGNATURE_MISMATCH']);
        const refused = await waitFor(async () => (await outbox(stack.db)).find((r) => r.last_status === 401), {
          what: 'the 401 recorded',
        });
        assert.equal(refused.status, 'pending', 'to be retried, once the receiver has the secret');
      });
    });
  });
}
