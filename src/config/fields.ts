// Config field types every section uses: ISO-8601 durations, PostgreSQL names, endpoint URLs.
import { z } from 'zod';
import { parseDuration } from './duration.ts';

/** An ISO-8601 duration (`PT30S`), as milliseconds. */
export const isoDuration = z.string().transform((text, ctx) => {
  try {
    return parseDuration(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

/** A duration with a default, given as text like the config's own. */
export const duration = (fallback: string) => isoDuration.prefault(fallback);

// Identifiers from config are always quoted by us, so any name PostgreSQL accepts is fine.
export const identifier = z
  .string()
  .min(1, 'expected a non-empty name')
  .max(63, 'expected a name of at most 63 characters (PostgreSQL truncates longer ones)')
  .refine((name) => !name.includes('\0'), 'expected a name without NUL characters');

export const endpoint = z.string().refine((text) => {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}, 'expected an absolute http:// or https:// URL');
