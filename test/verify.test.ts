// The receiver kit (order-webhooks/verify): the published vectors, the standardwebhooks package,
// one error class with a code for every failure, the idempotency helper, and a real webhook.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import {
  MemoryProcessedEvents,
  processOnce,
  type VerificationErrorCode,
  verifyStandardWebhook,
  verifyWebhook,
  verifyXSignature,
  WebhookVerificationError,
} from '../src/verify/index.ts';
import { waitFor } from './helpers/poll.ts';
import { outbox, stacksClosedAfter } from './helpers/stack.ts';
import { unpublished, VECTORS } from './helpers/vectors.ts';

const { body, xSignature: xs, standardWebhooks: sw, reference } = VECTORS;
const signedAt = new Date(sw.timestamp * 1000);
const swHeaders = { 'webhook-id': sw.id, 'webhook-timestamp': String(sw.timestamp), 'webhook-signature': sw.signature };

/** Runs `check` and returns the code of the WebhookVerificationError it throws. */
function failure(check: () => unknown): VerificationErrorCode {
  try {
    check();
  } catch (error) {
    assert.ok(error instanceof WebhookVerificationError, `expected a WebhookVerificationError, got ${String(error)}`);
    assert.equal(error.name, 'WebhookVerificationError');
    return error.code;
  }
  assert.fail('verified, but should not have');
}

describe('receiver kit: X-Signature', () => {
  it('the vectors are the ones docs/security.md publishes', () => {
    assert.deepEqual(unpublished(), []);
  });

  it('verifies the published hex and base64 vectors', () => {
    verifyXSignature(xs.secret, body, xs.hex);
    verifyXSignature(xs.secret, body, xs.hex.toUpperCase());
    verifyXSignature(xs.secret, Buffer.from(body), ` ${xs.hex}\t`);
    verifyXSignature(xs.secret, new TextEncoder().encode(body), xs.base64, 'base64');
  });

  it('refuses anything else, each with its code', () => {
    assert.equal(
      failure(() => verifyXSignature(xs.secret, `${body} `, xs.hex)),
      'SIGNATURE_MISMATCH',
    );
    assert.equal(
      failure(() => verifyXSignature('OtherSecret', body, xs.hex)),
      'SIGNATURE_MISMATCH',
    );
    assert.equal(
      failure(() => verifyXSignature(xs.secret, body, xs.hex.slice(1))),
      'SIGNATURE_MISMATCH',
    );
    assert.equal(
      failure(() => verifyXSignature(xs.secret, body, xs.hex, 'base64')),
      'SIGNATURE_MISMATCH',
    );
    assert.equal(
      failure(() => verifyXSignature(xs.secret, body, xs.base64.toLowerCase(), 'base64')),
      'SIGNATURE_MISMATCH',
    );
    assert.equal(
      failure(() => verifyXSignature(xs.secret, body, undefined)),
      'HEADER_MISSING',
    );
    assert.equal(
      failure(() => verifyXSignature(xs.secret, body, '  ')),
      'HEADER_MISSING',
    );
    assert.equal(
      failure(() => verifyXSignature(xs.secret, JSON.parse(body), xs.hex)),
      'BODY_NOT_RAW',
    );
  });

  it('accepts either secret while the service’s secret changes', () => {
    verifyXSignature(['NewSecret', xs.secret], body, xs.hex);
    verifyXSignature([xs.secret, 'NewSecret'], body, xs.hex);
    assert.equal(
      failure(() => verifyXSignature(['NewSecret', 'Other'], body, xs.hex)),
      'SIGNATURE_MISMATCH',
    );
  });

  it('a receiver set up wrongly gets a TypeError, not a verification failure', () => {
    assert.throws(() => verifyXSignature([], body, xs.hex), TypeError);
    assert.throws(() => verifyXSignature('', body, xs.hex), TypeError);
    assert.throws(() => verifyXSignature(xs.secret, body, xs.hex, 'HEX' as 'hex'), TypeError);
    assert.throws(() => verifyWebhook(body, {}, {}), TypeError);
  });
});

describe('receiver kit: Standard Webhooks', () => {
  it('verifies the published vectors, with the receiver’s clock at their timestamps', () => {
    assert.deepEqual(verifyStandardWebhook(sw.secret, body, swHeaders, { now: signedAt }), { id: sw.id, timestamp: sw.timestamp });
    // A rotation: the request carries both signatures; a receiver holding either secret verifies it.
    for (const secret of [sw.secret, sw.next]) {
      verifyStandardWebhook(secret, body, { ...swHeaders, 'webhook-signature': sw.both }, { now: signedAt });
    }
    verifyStandardWebhook([sw.next, sw.secret], body, swHeaders, { now: signedAt });
    const ref = { 'webhook-id': reference.id, 'webhook-timestamp': String(reference.timestamp), 'webhook-signature': reference.signature };
    verifyStandardWebhook(sw.secret, reference.body, ref, { now: new Date(reference.timestamp * 1000) });
  });

  it('refuses a timestamp outside the tolerance, either way, and one that is not a number', () => {
    assert.equal(
      failure(() => verifyStandardWebhook(sw.secret, body, swHeaders)),
      'TIMESTAMP_TOO_OLD',
      'the published vector is old: a replay, to a receiver on today’s clock',
    );
    const at = (seconds: number) => new Date((sw.timestamp + seconds) * 1000);
    verifyStandardWebhook(sw.secret, body, swHeaders, { now: at(300) });
    verifyStandardWebhook(sw.secret, body, swHeaders, { now: at(-300) });
    assert.equal(
      failure(() => verifyStandardWebhook(sw.secret, body, swHeaders, { now: at(301) })),
      'TIMESTAMP_TOO_OLD',
    );
    assert.equal(
      failure(() => verifyStandardWebhook(sw.secret, body, swHeaders, { now: at(-301) })),
      'TIMESTAMP_TOO_NEW',
    );
    verifyStandardWebhook(sw.secret, body, swHeaders, { now: at(3600), toleranceSeconds: 3600 });
    for (const bad of ['soon', '-1', '1.5', '1e9', '']) {
      const code = failure(() => verifyStandardWebhook(sw.secret, body, { ...swHeaders, 'webhook-timestamp': bad }, { now: signedAt }));
      assert.equal(code, bad === '' ? 'HEADER_MISSING' : 'TIMESTAMP_INVALID', bad);
    }
  });

  it('refuses a changed body, id, timestamp or signature, another secret and missing headers', () => {
    const verify = (headers: Record<string, string>, secret: string = sw.secret, text: string = body) =>
      failure(() => verifyStandardWebhook(secret, text, headers, { now: signedAt }));
    assert.equal(verify(swHeaders, sw.secret, `${body} `), 'SIGNATURE_MISMATCH');
    assert.equal(verify({ ...swHeaders, 'webhook-id': `${sw.id}x` }), 'SIGNATURE_MISMATCH');
    assert.equal(verify({ ...swHeaders, 'webhook-timestamp': String(sw.timestamp + 1) }), 'SIGNATURE_MISMATCH');
    assert.equal(verify({ ...swHeaders, 'webhook-signature': sw.signature.replace('v1,', 'v2,') }), 'SIGNATURE_MISMATCH');
    assert.equal(verify({ ...swHeaders, 'webhook-signature': `${sw.signature.slice(0, -2)}=` }), 'SIGNATURE_MISMATCH');
    assert.equal(verify(swHeaders, sw.next), 'SIGNATURE_MISMATCH');
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
      const { [name]: _dropped, ...rest } = swHeaders as Record<string, string>;
      assert.equal(verify(rest), 'HEADER_MISSING', name);
    }
    assert.throws(() => verifyStandardWebhook('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', body, swHeaders, { now: signedAt }), TypeError);
  });

  it('agrees with the standardwebhooks package, both ways', () => {
    const now = new Date();
    const seconds = Math.floor(now.getTime() / 1000);
    for (const [id, text] of [
      ['evt-1', body],
      ['0193a1f0-7c2e-7b5a-9d3e-2f4c6b8a1e08', '{"orderId":"ünïcödé ✓","eventType":"OrderCreated"}'],
      ['x', ''],
    ] as const) {
      for (const secret of [sw.secret, sw.next]) {
        const headers = {
          'webhook-id': id,
          'webhook-timestamp': String(seconds),
          'webhook-signature': new Webhook(secret).sign(id, now, text),
        };
        verifyStandardWebhook(secret, Buffer.from(text), headers);
        assert.deepEqual(verifyStandardWebhook(secret, text, headers), { id, timestamp: seconds });
        new Webhook(secret).verify(text, headers);
        const tampered = { ...headers, 'webhook-id': `${id}-other` };
        assert.throws(() => new Webhook(secret).verify(text, tampered), /No matching signature/);
        assert.equal(
          failure(() => verifyStandardWebhook(secret, text, tampered)),
          'SIGNATURE_MISMATCH',
        );
      }
    }
  });
});

describe('receiver kit: verifyWebhook', () => {
  const headers = { 'X-Signature': xs.hex, 'X-Event-Id': sw.id, 'X-Event-Attempt': '2', ...swHeaders };
  const options = { secret: xs.secret, standardWebhooks: { secrets: [sw.secret] }, now: signedAt };

  it('verifies both signatures and returns the event, from node headers, any case, or fetch Headers', () => {
    const event = { eventId: sw.id, attempt: 2, orderId: '07c6ad8c-d1ba-4e73-9bbf-c70a085a449c', eventType: 'OrderAccepted' };
    assert.deepEqual(verifyWebhook(body, headers, options), { ...event, timestamp: sw.timestamp });
    assert.deepEqual(verifyWebhook(Buffer.from(body), new Headers(headers), options), { ...event, timestamp: sw.timestamp });
    const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
    assert.deepEqual(verifyWebhook(body, lower, { secret: xs.secret }), event);
    assert.deepEqual(verifyWebhook(body, { ...swHeaders }, { standardWebhooks: { secrets: sw.secret }, now: signedAt }), {
      ...event,
      attempt: undefined,
      timestamp: sw.timestamp,
    });
  });

  it('needs every signature it is given a secret for', () => {
    const { 'X-Signature': _x, ...noX } = headers;
    assert.equal(
      failure(() => verifyWebhook(body, noX, options)),
      'HEADER_MISSING',
    );
    assert.equal(
      failure(() => verifyWebhook(body, { ...headers, 'webhook-signature': 'v1,AAAA' }, options)),
      'SIGNATURE_MISMATCH',
    );
    assert.equal(
      failure(() => verifyWebhook(body, headers, { ...options, now: undefined })),
      'TIMESTAMP_TOO_OLD',
    );
  });

  it('an X-Event-Id other than the signed webhook-id, a missing id, a body that is not the event', () => {
    assert.equal(
      failure(() => verifyWebhook(body, { ...headers, 'X-Event-Id': 'another' }, options)),
      'EVENT_ID_MISMATCH',
    );
    assert.equal(
      failure(() => verifyWebhook(body, { 'X-Signature': xs.hex }, { secret: xs.secret })),
      'HEADER_MISSING',
    );
    for (const text of ['not json', '[]', 'null', '{"orderId":1,"eventType":"OrderCreated"}']) {
      const signed = { 'X-Signature': createHmac('sha256', xs.secret).update(text).digest('hex'), 'X-Event-Id': 'e' };
      assert.equal(
        failure(() => verifyWebhook(text, signed, { secret: xs.secret })),
        'BODY_INVALID',
        text,
      );
    }
    assert.equal(
      failure(() => verifyWebhook({ orderId: 'x' } as never, headers, options)),
      'BODY_NOT_RAW',
    );
  });
});

describe('receiver kit: processed events (idempotency by X-Event-Id)', () => {
  it('claims an id once; a completed id is a duplicate until forgotten; a released one is claimable again', () => {
    let now = 0;
    const store = new MemoryProcessedEvents({ rememberMs: 1000, leaseMs: 100, clock: () => now });
    assert.equal(store.claim('a'), 'claimed');
    assert.equal(store.claim('a'), 'busy', 'another delivery of it while it is processed');
    store.release('a');
    assert.equal(store.claim('a'), 'claimed', 'released after a failure: the retry processes it');
    store.complete('a');
    assert.equal(store.claim('a'), 'duplicate');
    store.release('a');
    assert.equal(store.claim('a'), 'duplicate', 'release does not undo a completion');
    now = 999;
    assert.equal(store.claim('a'), 'duplicate');
    now = 1000;
    assert.equal(store.claim('a'), 'claimed', 'remembered for rememberMs');
    now = 1099;
    assert.equal(store.claim('a'), 'busy');
    now = 1100;
    assert.equal(store.claim('a'), 'claimed', 'a claim whose holder died lapses after leaseMs');
  });

  it('stays within maxEntries, dropping expired ids, then the oldest completed, never a claim held', () => {
    let now = 0;
    const store = new MemoryProcessedEvents({ maxEntries: 10, rememberMs: 50, leaseMs: 1000, clock: () => now });
    for (let i = 0; i < 5; i++) {
      store.claim(`old${i}`);
      store.complete(`old${i}`);
    }
    now = 100; // the five completed ones have expired
    for (let i = 0; i < 3; i++) store.claim(`held${i}`);
    for (let i = 0; i < 20; i++) {
      store.claim(`new${i}`);
      store.complete(`new${i}`);
      assert.ok(store.size <= 10, `size ${store.size}`);
    }
    for (let i = 0; i < 3; i++) assert.equal(store.claim(`held${i}`), 'busy', `held${i} kept`);
    assert.equal(store.claim('new19'), 'duplicate', 'the newest kept');
    assert.equal(store.claim('new0'), 'claimed', 'the oldest dropped');
  });

  it('processOnce runs the work once per id, concurrent deliveries included, and again after a failure', async () => {
    const store = new MemoryProcessedEvents();
    let runs = 0;
    let finish!: () => void;
    const gate = new Promise<void>((resolve) => (finish = resolve));
    const first = processOnce(store, 'e1', async () => {
      runs++;
      await gate;
      return 'done';
    });
    assert.deepEqual(await processOnce(store, 'e1', () => runs++), { outcome: 'busy' });
    finish();
    assert.deepEqual(await first, { outcome: 'processed', result: 'done' });
    assert.deepEqual(await processOnce(store, 'e1', () => runs++), { outcome: 'duplicate' });
    assert.equal(runs, 1);

    await assert.rejects(
      processOnce(store, 'e2', () => {
        throw new Error('the database is down');
      }),
      /database is down/,
    );
    assert.deepEqual(await processOnce(store, 'e2', () => 'second try'), { outcome: 'processed', result: 'second try' });
  });
});

describe('receiver kit: a real webhook from the service', () => {
  const createStack = stacksClosedAfter();

  it('verifies what the service sends, both signatures, and reads its event', async () => {
    const secrets = { secret: 'kit-secret', standardWebhooks: { secrets: [sw.next, sw.secret] } };
    const stack = await createStack('verify_kit', { webHook: secrets });
    await stack.db.query("INSERT INTO orders (state) VALUES ('created')");
    const [request] = await stack.receiver.waitForCount(1);
    const row = await waitFor(async () => (await outbox(stack.db)).find((r) => r.status === 'delivered'), { what: 'the event delivered' });
    const event = verifyWebhook(request!.body, request!.headers, { secret: 'kit-secret', standardWebhooks: { secrets: sw.secret } });
    assert.equal(event.eventId, row.event_id);
    assert.equal(event.orderId, row.order_id);
    assert.equal(event.eventType, 'OrderCreated');
    assert.equal(event.attempt, 1);
    assert.ok(Math.abs(event.timestamp! - Date.now() / 1000) < 60, 'sent just now');
    assert.equal(
      failure(() => verifyWebhook(request!.body, request!.headers, { secret: 'not-the-secret' })),
      'SIGNATURE_MISMATCH',
    );
  });
});
