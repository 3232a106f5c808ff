import { createHash } from 'node:crypto';
import type { ApiToken } from '../config/env.js';

const digest = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * Bearer tokens, compared by their SHA-256: a lookup keyed by the digest never compares the
 * secret itself byte by byte, so response time tells an attacker nothing about a near miss.
 */
export class TokenAuthenticator {
  private readonly byDigest: Map<string, string>;
  /**
   * Headers already proven valid, so the hot path skips the digest. Only successes are cached
   * (a wrong token is always hashed), and only a caller who already holds the token can hit it.
   */
  private readonly known = new Map<string, string>();

  constructor(tokens: readonly ApiToken[]) {
    this.byDigest = new Map(tokens.map((t) => [digest(t.token), t.name]));
  }

  /** The token's name, or undefined when the header is missing, malformed or unknown. */
  authenticate(header: string | undefined): string | undefined {
    if (!header) return undefined;
    const cached = this.known.get(header);
    if (cached !== undefined) return cached;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) return undefined;
    const name = this.byDigest.get(digest(match[1]!));
    if (name !== undefined) {
      if (this.known.size >= 1000) this.known.clear();
      this.known.set(header, name);
    }
    return name;
  }
}
