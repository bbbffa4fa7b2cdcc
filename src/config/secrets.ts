// Secrets in the config: written in the file, or read from an environment variable (`{"env"}`) or a
// file (`{"file"}`) when the config is parsed. A problem is reported at its key's path; the value never.
import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** A secret written in the config file, or where to read it: `{"env": NAME}` or `{"file": PATH}`. */
export type SecretSource = string | { env: string } | { file: string };

/** Turns a secret's source into its value, or says why it cannot (never showing the value). */
type ResolveSecret = (source: SecretSource) => { value: string } | { problem: string };

// zod has no parse context: parseConfig sets the resolver for the length of one (synchronous)
// parse, so that each secret's problem is reported at its key's path like any other.
let resolveSecretNow: ResolveSecret = (source) => resolveSecret(source, process.env);

/** Runs one synchronous parse with secrets resolved from `env`. */
export function withSecretsFrom<T>(env: NodeJS.ProcessEnv, parse: () => T): T {
  const before = resolveSecretNow;
  resolveSecretNow = (source) => resolveSecret(source, env);
  try {
    return parse();
  } finally {
    resolveSecretNow = before;
  }
}

const SECRET_FORMS = 'expected a string, {"env": "VARIABLE"} or {"file": "/path"}';
export const secretSource = z.union([z.string(), z.strictObject({ env: z.string().min(1) }), z.strictObject({ file: z.string().min(1) })], {
  error: SECRET_FORMS,
});

export const secret = (allowEmpty = false) =>
  secretSource.transform((source, ctx) => {
    const resolved = resolveSecretNow(source);
    if ('problem' in resolved) {
      ctx.addIssue({ code: 'custom', message: resolved.problem });
      return z.NEVER;
    }
    if (!allowEmpty && resolved.value === '') {
      ctx.addIssue({ code: 'custom', message: 'expected a non-empty value' });
      return z.NEVER;
    }
    return resolved.value;
  });

/** A secret's value: as written, from an environment variable, or from a file (one trailing newline dropped). */
function resolveSecret(source: SecretSource, env: NodeJS.ProcessEnv): { value: string } | { problem: string } {
  if (typeof source === 'string') return { value: source };
  if ('env' in source) {
    const value = env[source.env];
    return value === undefined ? { problem: `environment variable ${source.env} is not set` } : { value };
  }
  try {
    return { value: readFileSync(source.file, 'utf8').replace(/\r?\n$/, '') };
  } catch (error) {
    return { problem: `cannot read ${source.file} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})` };
  }
}

/** The keys whose secret is written in the file itself (not taken from the environment or a file). */
export function literalSecrets(raw: unknown): string[] {
  const object = (value: unknown) => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {});
  const webHook = object(object(raw).webHook);
  const found = ['secret', 'key', 'sslKeyPassword']
    .filter((name) => typeof webHook[name] === 'string' && webHook[name] !== '')
    .map((name) => `webHook.${name}`);
  const secrets = object(webHook.standardWebhooks).secrets;
  if (Array.isArray(secrets) && secrets.some((s) => typeof s === 'string')) found.push('webHook.standardWebhooks.secrets');
  const url = object(object(raw).database).url;
  if (typeof url === 'string' && hasPassword(url)) found.push('database.url');
  if (typeof object(object(raw).http).token === 'string') found.push('http.token');
  const alerts = object(object(raw).alerts);
  for (const name of ['secret', 'sslKeyPassword'])
    if (typeof alerts[name] === 'string' && alerts[name] !== '') found.push(`alerts.${name}`);
  if (Object.values(object(object(object(object(raw).telemetry).otlp).headers)).some((v) => typeof v === 'string')) {
    found.push('telemetry.otlp.headers');
  }
  return found;
}

function hasPassword(url: string): boolean {
  try {
    return new URL(url).password !== '';
  } catch {
    return /:[^@/]*@/.test(url);
  }
}
