// The HTTP ceiling for W2: a bare got POST loop, in its own process like the service, with the same
// keep-alive agent, concurrency, signing and response handling as src/delivery/sender.ts, and no database.
// Usage: gotLoop.ts <url> <requests> <concurrency> [plain]; prints one JSON line. With `plain`, got
// runs without the Sender's emptyCacheOptions hook: got as its defaults make it.
import http from 'node:http';
import { got } from 'got';
import { emptyCacheOptions } from '../src/delivery/sender.ts';
import { signBody } from '../src/delivery/sign.ts';

const [url, countText, concurrencyText, variant] = process.argv.slice(2);
const count = Number(countText);
const concurrency = Number(concurrencyText);
const secret = process.env.BENCH_SECRET ?? '';
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
const client = got.extend({
  method: 'POST',
  agent: { http: agent },
  retry: { limit: 0 },
  followRedirect: false,
  throwHttpErrors: false,
  decompress: false,
  responseType: 'buffer',
  hooks: { beforeRequest: variant === 'plain' ? [] : [emptyCacheOptions] },
});

let next = 0;
let failed = 0;
async function worker(): Promise<void> {
  while (next < count) {
    const body = JSON.stringify({ orderId: String(next++), eventType: 'OrderAccepted' });
    const response = await client(url!, {
      body,
      headers: { 'content-type': 'application/json', 'x-signature': signBody(secret, body) },
    });
    if (response.statusCode !== 200) failed++;
  }
}

const started = performance.now();
await Promise.all(Array.from({ length: concurrency }, () => worker()));
const seconds = (performance.now() - started) / 1000;
agent.destroy();
const { user, system } = process.cpuUsage();
// The whole process's CPU, start-up included, as the service's figure includes everything it does.
const cpuMsPerRequest = (user + system) / 1000 / count;
process.stdout.write(`${JSON.stringify({ requests: count, failed, seconds, perSecond: count / seconds, cpuMsPerRequest })}\n`);
