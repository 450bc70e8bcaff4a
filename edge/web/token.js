// Where a page gets its join token.
//
// A real deployment hands users a link with `#token=<jwt>` (the fragment never reaches the
// server logs). Local dev edges also expose `POST /v1/dev/token`, which mints one on the spot;
// production edges answer it with 404, and then the page must say that a link is needed.

export class NeedsTokenError extends Error {
  constructor() {
    super('This edge needs a token in the link. Ask the meeting host for an invitation link.');
    this.name = 'NeedsTokenError';
  }
}

/** The token in `#token=…`, or null. */
export function tokenFromHash(hash = location.hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const token = params.get('token');
  return token && token.split('.').length === 3 ? token : null;
}

/**
 * The claims of a JWT, decoded without verification (only to prefill the form: the edge is
 * the one that checks the signature). Null if it does not parse.
 */
export function decodeClaims(jwt) {
  try {
    const b64 = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

/** Asks a dev edge for a token. Throws NeedsTokenError when the edge has dev tokens disabled. */
export async function devToken({ meeting, identity, name, role }) {
  let res;
  try {
    res = await fetch('/v1/dev/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ meeting, identity, name, role }),
    });
  } catch (err) {
    throw new Error(`Cannot reach the server (${err.message}).`);
  }
  if (res.status === 404 || res.status === 405) throw new NeedsTokenError();
  if (!res.ok) {
    const text = (await res.text().catch(() => '')).slice(0, 200);
    throw new Error(`The server refused a token (${res.status}${text ? `: ${text}` : ''}).`);
  }
  const body = await res.json();
  if (typeof body.token !== 'string') throw new Error('The server sent no token.');
  return body.token;
}

/** A random lowercase slug such as `guest-k3x9q2` (identities, meeting codes). */
export function randomSlug(prefix = '', len = 6) {
  const alphabet = 'abcdefghijkmnopqrstuvwxyz23456789';
  const bytes = crypto.getRandomValues(new Uint8Array(len));
  let s = '';
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return prefix ? `${prefix}-${s}` : s;
}

/** A meeting code that reads like `abc-defg-hjk`. */
export function randomMeetingCode() {
  const letters = 'abcdefghijkmnopqrstuvwxyz';
  const bytes = crypto.getRandomValues(new Uint8Array(10));
  const chars = [...bytes].map((b) => letters[b % letters.length]).join('');
  return `${chars.slice(0, 3)}-${chars.slice(3, 7)}-${chars.slice(7)}`;
}
