import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDuration } from '../src/config/duration.ts';
import { endpointUrl, redactUrl } from '../src/delivery/endpoint.ts';
import { nextAttempt, parseRetryAfter } from '../src/delivery/retryPolicy.ts';
import { Webhook } from 'standardwebhooks';
import { WHSEC } from '../src/config/config.ts';
import { signBody, standardWebhookHeaders, verifySignature } from '../src/delivery/sign.ts';

describe('signing', () => {
  const body = '{"orderId":"07c6ad8c-d1ba-4e73-9bbf-c70a085a449c","eventType":"OrderAccepted"}';
  // Known answer, computed independently: printf '%s' "$body" | openssl dgst -sha256 -hmac HeaderSecret
  const expected = 'c28cd704d8ce1167a0073cf86f2d34c526c8795b83b10af31a1610c980549e8c';

  it('signs the exact body with HMAC-SHA256 as lowercase hex', () => {
    assert.equal(signBody('HeaderSecret', body), expected);
  });

  it('verifies in constant time and rejects anything else', () => {
    assert.equal(verifySignature('HeaderSecret', body, expected), true);
    assert.equal(verifySignature('HeaderSecret', body, expected.toUpperCase()), true);
    assert.equal(verifySignature('OtherSecret', body, expected), false);
    assert.equal(verifySignature('HeaderSecret', `${body} `, expected), false);
    assert.equal(verifySignature('HeaderSecret', body, expected.slice(1)), false);
    assert.equal(verifySignature('HeaderSecret', body, undefined), false);
  });

  it('signs as base64 when webHook.signatureEncoding is base64', () => {
    // printf '%s' "$body" | openssl dgst -sha256 -hmac HeaderSecret -binary | base64
    const base64 = 'wozXBNjOEWegBzz4by00xSbIeVuDsQrzGhYQyYBUnow=';
    assert.equal(signBody('HeaderSecret', body, 'base64'), base64);
    assert.equal(Buffer.from(base64, 'base64').toString('hex'), expected, 'the same digest, encoded otherwise');
    assert.equal(verifySignature('HeaderSecret', body, base64, 'base64'), true);
    assert.equal(verifySignature('HeaderSecret', body, base64.toLowerCase(), 'base64'), false);
    assert.equal(verifySignature('HeaderSecret', body, expected, 'base64'), false);
  });
});

describe('Standard Webhooks signatures', () => {
  const body = '{"orderId":"07c6ad8c-d1ba-4e73-9bbf-c70a085a449c","eventType":"OrderAccepted"}';
  const id = '0193a1f0-7c2e-7b5a-9d3e-2f4c6b8a1e07';
  const timestamp = 1764680000;
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  // base64 of "the new key after the rotation"
  const next = 'whsec_dGhlIG5ldyBrZXkgYWZ0ZXIgdGhlIHJvdGF0aW9u';

  it('matches the known answers, computed with openssl (docs/security.md lists them)', () => {
    // key=$(printf %s MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | base64 -d | xxd -p -c 256)
    // printf %s "$id.$timestamp.$body" | openssl dgst -sha256 -mac HMAC -macopt hexkey:$key -binary | base64
    assert.deepEqual(standardWebhookHeaders([secret], id, timestamp, body), {
      'webhook-id': id,
      'webhook-timestamp': '1764680000',
      'webhook-signature': 'v1,93faZ2yphDXjYv0ek5i7haumRBLYAEraiqP2McslZ8w=',
    });
    assert.equal(
      standardWebhookHeaders([secret, next], id, timestamp, body)['webhook-signature'],
      'v1,93faZ2yphDXjYv0ek5i7haumRBLYAEraiqP2McslZ8w= v1,GyuNIwR0LvSyqXiB+En8VXO94Ld7dtnH8vXCk/Ryla0=',
    );
    // The vector of the Standard Webhooks reference libraries.
    const reference = standardWebhookHeaders([secret], 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}');
    assert.equal(reference['webhook-signature'], 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('agrees with the standardwebhooks package, and each secret of a rotation verifies alone', () => {
    const now = Math.floor(Date.now() / 1000);
    const headers = standardWebhookHeaders([secret, next], id, now, body);
    for (const s of [secret, next]) {
      assert.deepEqual(new Webhook(s).verify(body, headers), JSON.parse(body));
      assert.ok(headers['webhook-signature'].split(' ').includes(new Webhook(s).sign(id, new Date(now * 1000), body)));
    }
    const other = 'whsec_b3RoZXIgc2VjcmV0IG5vdCBpbiB1c2U=';
    assert.throws(() => new Webhook(other).verify(body, headers), /No matching signature found/);
    assert.throws(() => new Webhook(secret).verify(`${body} `, headers), /No matching signature found/);
    // The timestamp is signed: a receiver rejects an old (replayed) message.
    const old = standardWebhookHeaders([secret], id, now - 3600, body);
    assert.throws(() => new Webhook(secret).verify(body, old), /Message timestamp too old/);
  });

  it('accepts only whsec_ secrets holding base64', () => {
    for (const good of [secret, next, 'whsec_AAAA', 'whsec_AA==', 'whsec_AAA=']) assert.match(good, WHSEC);
    for (const bad of [
      'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      'whsec_',
      'whsec_abc',
      'whsec_ab$d',
      'WHSEC_AAAA',
      'whsec_AAAA ',
      'whsec_A===',
    ]) {
      assert.doesNotMatch(bad, WHSEC, bad);
    }
  });
});

describe('endpoint URL', () => {
  it('puts the key in the spec’s final URL form', () => {
    assert.equal(
      endpointUrl('http://www.example.org/automation', 'QueryParameterKey'),
      'http://www.example.org/automation/?key=QueryParameterKey',
    );
    assert.equal(endpointUrl('http://www.example.org/automation/', 'K'), 'http://www.example.org/automation/?key=K');
    assert.equal(endpointUrl('http://h/x?a=1', 'K'), 'http://h/x?a=1&key=K');
    assert.equal(endpointUrl('http://h/x', 'a b&c=d'), 'http://h/x/?key=a%20b%26c%3Dd');
    assert.equal(endpointUrl('http://h/x', undefined), 'http://h/x');
  });

  it('redacts credentials and query values for logs', () => {
    const shown = redactUrl('https://user:pw@h/x/?key=SecretKey&a=1');
    assert.ok(!shown.includes('SecretKey') && !shown.includes('pw') && !shown.includes('user'), shown);
    assert.ok(shown.startsWith('https://'), shown);
  });
});

describe('ISO-8601 durations', () => {
  it('accepts the spec’s form and its relatives', () => {
    assert.equal(parseDuration('PT60S'), 60_000);
    assert.equal(parseDuration('PT1M30S'), 90_000);
    assert.equal(parseDuration('PT0.5S'), 500);
    assert.equal(parseDuration('P1DT2H'), 26 * 3600_000);
  });

  it('rejects anything else', () => {
    for (const text of ['60s', 'PT5Sabc', 'PT', 'P', 'P1DT', '-PT5S', 'P1Y', 'P1M', '', ' PT5S']) {
      assert.throws(() => parseDuration(text), /ISO-8601/, text);
    }
  });
});

describe('retry policy', () => {
  const delays = [5000, 30000];

  it('waits the configured delay with ±10% jitter, then fails', () => {
    assert.deepEqual(nextAttempt(1, delays, null, 0.5), { status: 'pending', delayMs: 5000 });
    assert.deepEqual(nextAttempt(1, delays, null, 0), { status: 'pending', delayMs: 4500 });
    assert.deepEqual(nextAttempt(2, delays, null, 0.999999), { status: 'pending', delayMs: 33000 });
    assert.deepEqual(nextAttempt(3, delays, null, 0.5), { status: 'failed' });
  });

  it('honours Retry-After, capped, but not past the last attempt', () => {
    assert.deepEqual(nextAttempt(1, delays, 120_000, 0.5), { status: 'pending', delayMs: 120_000 });
    assert.deepEqual(nextAttempt(1, delays, 10 ** 12, 0.5), { status: 'pending', delayMs: 6 * 3600_000 });
    assert.deepEqual(nextAttempt(3, delays, 1000, 0.5), { status: 'failed' });
  });

  it('parses Retry-After in seconds or as an HTTP date', () => {
    const now = Date.parse('2026-11-28T10:00:00Z');
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter('Sat, 28 Nov 2026 10:01:00 GMT', now), 60_000);
    assert.equal(parseRetryAfter('soon', now), null);
    assert.equal(parseRetryAfter(undefined, now), null);
  });
});
