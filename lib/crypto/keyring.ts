import { randomBytes } from 'node:crypto';
import type { SecretStore } from './secret-store.js';

export interface TenantKey {
  version: string;
  key: Buffer;
}

class TenantKeyMissingError extends Error {
  override name = 'TenantKeyMissingError';
}

type Purpose = 'data' | 'pseudonym';

const CURRENT_TTL_MS = 5 * 60 * 1000;

/**
 * Each tenant's keys: a data key (AES-256-GCM, field and blob encryption) and a pseudonym key
 * (HMAC-SHA256), one versioned secret each. Versions are immutable and cached for good; the
 * current version is re-read after a few minutes so a rotation elsewhere is picked up.
 */
export class TenantKeyring {
  readonly #store: SecretStore;
  readonly #versions = new Map<string, Buffer>();
  readonly #current = new Map<string, { key: TenantKey; until: number }>();

  constructor(dependencies: { secrets: SecretStore }) {
    this.#store = dependencies.secrets;
  }

  static secretName(tenantId: string, purpose: Purpose): string {
    return `tenant-${tenantId}-${purpose}`;
  }

  /** Creates both keys unless they exist; safe to repeat. */
  async ensureTenantKeys(tenantId: string): Promise<void> {
    for (const purpose of ['data', 'pseudonym'] as const) {
      const name = TenantKeyring.secretName(tenantId, purpose);
      if (!(await this.#store.get(name))) await this.#store.set(name, randomBytes(32).toString('base64'));
    }
  }

  /** Makes a new data key version; older versions still decrypt what they encrypted. */
  async rotateDataKey(tenantId: string): Promise<string> {
    const name = TenantKeyring.secretName(tenantId, 'data');
    const created = await this.#store.set(name, randomBytes(32).toString('base64'));
    this.#current.delete(name);
    return created.version;
  }

  currentDataKey(tenantId: string): Promise<TenantKey> {
    return this.#currentKey(TenantKeyring.secretName(tenantId, 'data'));
  }

  async dataKeyVersion(tenantId: string, version: string): Promise<Buffer> {
    const name = TenantKeyring.secretName(tenantId, 'data');
    const cacheKey = `${name}/${version}`;
    const cached = this.#versions.get(cacheKey);
    if (cached) return cached;
    const secret = await this.#store.get(name, version);
    if (!secret) throw new TenantKeyMissingError('the data key version is not available');
    const key = decodeKey(secret.value);
    this.#versions.set(cacheKey, key);
    return key;
  }

  pseudonymKey(tenantId: string): Promise<TenantKey> {
    return this.#currentKey(TenantKeyring.secretName(tenantId, 'pseudonym'));
  }

  /** Drops cached keys of a tenant (after its keys were destroyed). */
  forget(tenantId: string): void {
    for (const map of [this.#versions, this.#current]) {
      for (const key of map.keys()) if (key.startsWith(`tenant-${tenantId}-`)) map.delete(key);
    }
  }

  async #currentKey(name: string): Promise<TenantKey> {
    const cached = this.#current.get(name);
    if (cached && cached.until > Date.now()) return cached.key;
    const secret = await this.#store.get(name);
    if (!secret) throw new TenantKeyMissingError('the tenant has no key of this kind');
    const key = { version: secret.version, key: decodeKey(secret.value) };
    this.#current.set(name, { key, until: Date.now() + CURRENT_TTL_MS });
    this.#versions.set(`${name}/${secret.version}`, key.key);
    return key;
  }
}

function decodeKey(value: string): Buffer {
  const key = Buffer.from(value, 'base64');
  if (key.length !== 32) throw new Error('a tenant key must be 256 bits');
  return key;
}
