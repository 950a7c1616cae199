/**
 * Redacts credentials inside free text: the password of `scheme://user:password@host` URLs,
 * `password=`/`sslpassword=` pairs (libpq key/value strings and URL query parameters) and
 * bearer/basic credentials of an Authorization header. Driver error messages and stacks may
 * quote a connection string; every log line, banner, CLI message and startup error goes
 * through this. The one place that knows what a secret inside text looks like.
 */
export function redactSecrets(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s@/]+@/gi, '$1***@')
    .replace(/\b((?:ssl)?password\s*=\s*)('[^']*'|[^\s'";&]+)/gi, '$1***')
    .replace(/\b(bearer|basic)\s+[A-Za-z0-9._~+/-]+=*/gi, '$1 ***');
}

/** A connection URL that can be shown: its password (in the authority or the query) removed. */
export function redactUrl(value: string): string {
  return redactSecrets(value);
}
