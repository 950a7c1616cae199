import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { problem, problemTypes } from '../problem.ts';

const REALM = 'walcache ops';

/**
 * Bearer `OPS_TOKEN` for scripts (`Authorization: Bearer <token>`); a browser may send the
 * token as the password of HTTP Basic auth (any user name), so the dashboard works without
 * a header-injecting extension. `challenge` picks what a 401 asks for: Basic makes a browser
 * show its login prompt, so it is used for the dashboard.
 */
export function requireOpsToken(token: string, challenge: 'Bearer' | 'Basic'): MiddlewareHandler {
  const expected = digest(token);
  return async (c, next) => {
    const presented = presentedToken(c.req.header('authorization'));
    if (presented !== undefined && timingSafeEqual(digest(presented), expected)) return next();
    return problem(
      c,
      {
        type: problemTypes.unauthorized,
        title: 'Unauthorized',
        status: 401,
        detail:
          presented === undefined
            ? 'the ops routes need the OPS_TOKEN: Authorization: Bearer <token> (or Basic auth with the token as password)'
            : 'the token does not match OPS_TOKEN',
      },
      {
        'www-authenticate':
          challenge === 'Basic' ? `Basic realm="${REALM}", charset="UTF-8"` : `Bearer realm="${REALM}"`,
      },
    );
  };
}

/** Digests first: timingSafeEqual needs equal lengths, and the length must not leak either. */
function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

function presentedToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const [scheme, value] = header.split(' ', 2);
  if (!value) return undefined;
  if (scheme?.toLowerCase() === 'bearer') return value.trim();
  if (scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value.trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}
