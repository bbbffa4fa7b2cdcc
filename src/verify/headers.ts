// Request headers as receivers hold them: node's `req.headers` (lower-case keys), a fetch
// `Headers`, or any object of names to values.
import { WebhookVerificationError } from './error.ts';

export type WebhookHeaders = { get(name: string): string | null | undefined } | Record<string, string | readonly string[] | undefined>;

/** A header's value, found whatever the case of its name; a repeated header is joined as node joins it. */
export function headerValue(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof headers.get === 'function') return headers.get(name) ?? undefined;
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== wanted || value === undefined) continue;
    return typeof value === 'string' ? value : (value as readonly string[]).join(', ');
  }
  return undefined;
}

/** A header that must be there. */
export function requiredHeader(headers: WebhookHeaders, name: string): string {
  const value = headerValue(headers, name)?.trim();
  if (!value) throw new WebhookVerificationError('HEADER_MISSING', `the ${name} header is missing`);
  return value;
}
