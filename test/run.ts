// The README's test command: node's test runner over the files given, against the server that
// chooseTestServer picks. An embedded server is started once for the whole run and stopped at the
// end (node 20's test runner has no global setup hook, hence this wrapper). The programs the test
// files need besides node and PostgreSQL are installed first, when they can be (helpers/tools.ts).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startEmbeddedPostgres } from '../src/demo/embeddedPostgres.ts';
import { chooseTestServer } from './helpers/testServer.ts';
import { installTools, toolsNeeded } from './helpers/tools.ts';

const files = process.argv.slice(2);
const env = installTools(toolsNeeded(files.map((file) => readFileSync(file, 'utf8'))), { ...process.env });
const choice = await chooseTestServer(process.env);
let stopServer: () => Promise<void> = async () => {};
if (choice.kind === 'embedded') {
  const started = Date.now();
  const server = await startEmbeddedPostgres({ label: 'order-webhooks-test', auth: 'trust' }).catch((error: Error) => {
    process.stderr.write(`tests: no PostgreSQL to run on: ${error.message}\n`);
    process.exit(1);
  });
  stopServer = () => server.stop();
  env.TEST_DATABASE_URL = server.url();
  process.stderr.write(
    `tests: embedded PostgreSQL 15 on 127.0.0.1:${server.port} (${choice.reason}), started in ${Date.now() - started} ms\n`,
  );
} else {
  const { host } = new URL(choice.url);
  process.stderr.write(`tests: PostgreSQL at ${host} (${choice.kind === 'given' ? 'TEST_DATABASE_URL' : 'the local server'})\n`);
}

const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=300000', ...files], {
  stdio: 'inherit',
  env,
});
// A signal ends the tests, then the server is still stopped and its folder removed.
const forward = (signal: NodeJS.Signals) => child.kill(signal);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, forward);
const code = await new Promise<number>((resolve) => child.on('exit', (exitCode) => resolve(exitCode ?? 1)));
await stopServer();
process.exitCode = code;
