// ISO-8601 durations (the spec's `connectionTimeout: "PT60S"`), parsed strictly.
// Luxon does the parsing; we add the checks it leaves out: no empty `P`/`PT`, no trailing `T`,
// no negative values, and no years or months, whose length in milliseconds is not fixed.
import { Duration } from 'luxon';

export class DurationError extends Error {
  override name = 'DurationError';
}

const SHAPE = /^P(?!$)(\d+(?:[.,]\d+)?W)?(\d+(?:[.,]\d+)?D)?(T(?=\d)(\d+(?:[.,]\d+)?H)?(\d+(?:[.,]\d+)?M)?(\d+(?:[.,]\d+)?S)?)?$/;

/** Parses an ISO-8601 duration such as `PT30S`, `PT1M30S` or `P1D` into milliseconds. */
export function parseDuration(text: string): number {
  if (!SHAPE.test(text)) {
    throw new DurationError(
      `${JSON.stringify(text)} is not an ISO-8601 duration of weeks, days, hours, minutes or seconds (e.g. "PT30S", "PT1M30S", "P1D")`,
    );
  }
  const duration = Duration.fromISO(text);
  if (!duration.isValid) throw new DurationError(`${JSON.stringify(text)} is not a valid ISO-8601 duration`);
  return Math.round(duration.toMillis());
}

/** Formats milliseconds back as a short ISO-8601 duration, for messages and the README. */
export function formatDuration(ms: number): string {
  return Duration.fromMillis(ms).shiftTo('hours', 'minutes', 'seconds').toISO() ?? `${ms}ms`;
}
