// The spec's final URL form and a redacted form for logs.

/**
 * Adds the spec's `key` query parameter: `http://host/automation` + key → `http://host/automation/?key=K`.
 * An endpoint that already has a query keeps it and gets `&key=K`. The key is URL-encoded.
 */
export function endpointUrl(endpoint: string, key: string | undefined): string {
  if (key === undefined) return endpoint;
  const url = new URL(endpoint);
  const encoded = encodeURIComponent(key);
  if (url.search && url.search !== '?') {
    url.search = `${url.search.slice(1)}&key=${encoded}`;
  } else {
    if (!url.pathname.endsWith('/')) url.pathname = `${url.pathname}/`;
    url.search = `key=${encoded}`;
  }
  return url.toString();
}

/** The endpoint without credentials or query values: safe for logs and errors. */
export function redactUrl(text: string): string {
  try {
    const url = new URL(text);
    if (url.username) url.username = 'REDACTED';
    if (url.password) url.password = 'REDACTED';
    for (const name of [...new Set(url.searchParams.keys())]) url.searchParams.set(name, 'REDACTED');
    return url.toString();
  } catch {
    return '(unparseable URL)';
  }
}
