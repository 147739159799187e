import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { SecretStore } from '../crypto/secret-store.js';
import { invalidInput } from '../errors.js';

const SECRET = 'continuation-token-key';

/**
 * Continuation tokens that only this API issues and that only work where they were issued: the
 * payload (a storage continuation, or where a merged listing stopped) travels with an HMAC over
 * the tenant, the route and the query's filters. A token from another tenant, another route or
 * another query, or one changed by a single character, is a 400 — never a 500, and never handed
 * to storage.
 */
export class ContinuationTokens {
  readonly #secrets: SecretStore;
  #key: Promise<Buffer> | undefined;

  constructor(dependencies: { secrets: SecretStore }) {
    this.#secrets = dependencies.secrets;
  }

  async issue(binding: TokenBinding, payload: unknown): Promise<string> {
    const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
    return `${body}.${await this.#mac(binding, body)}`;
  }

  /** The payload of a token issued for exactly this binding; 400 otherwise. */
  async open<T>(binding: TokenBinding, token: string, isPayload: (value: unknown) => value is T): Promise<T> {
    const invalid = () =>
      invalidInput('The continuation token is invalid.', [
        { path: '/continuationToken', message: 'not a token this API issued for this query' },
      ]);
    const [body, mac, extra] = token.split('.');
    if (!body || !mac || extra !== undefined) throw invalid();
    const expected = Buffer.from(await this.#mac(binding, body));
    const presented = Buffer.from(mac);
    if (expected.length !== presented.length || !timingSafeEqual(expected, presented)) throw invalid();
    let payload: unknown;
    try {
      payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      throw invalid();
    }
    if (!isPayload(payload)) throw invalid();
    return payload;
  }

  async #mac(binding: TokenBinding, body: string): Promise<string> {
    const filters = createHash('sha256')
      .update(
        JSON.stringify(
          Object.entries(binding.query)
            .filter(([, v]) => v !== undefined)
            .sort(([a], [b]) => a.localeCompare(b)),
        ),
      )
      .digest('hex');
    return createHmac('sha256', await this.#secret())
      .update(`${binding.tenant}\u0000${binding.route}\u0000${filters}\u0000${body}`)
      .digest('base64url');
  }

  #secret(): Promise<Buffer> {
    this.#key ??= (async () => {
      let secret = await this.#secrets.get(SECRET);
      if (!secret) {
        await this.#secrets.set(SECRET, randomBytes(32).toString('base64'));
        secret = await this.#secrets.get(SECRET);
      }
      if (!secret) throw new Error('no continuation token key');
      return Buffer.from(secret.value, 'base64');
    })().catch((error: unknown) => {
      this.#key = undefined;
      throw error;
    });
    return this.#key;
  }
}

/** What a token is bound to: the tenant, the route (operation id) and the query's filters (not its page size). */
export interface TokenBinding {
  tenant: string;
  route: string;
  query: Record<string, string | number | boolean | undefined>;
}
