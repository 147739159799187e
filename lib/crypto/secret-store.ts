import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { link, mkdir, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TokenCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import type { Environment } from '../config.js';

export interface SecretVersion {
  name: string;
  version: string;
  /** Base64 of the secret bytes. */
  value: string;
  /** When this version was made (key rotation dates for the TOM report). */
  createdOn?: string;
}

/** What destroying a secret achieved: purged now, or (purge protection) purged by the vault later. */
export interface DestroyedSecret {
  name: string;
  deletedAt: string;
  /** Set when every copy is gone now. */
  purgedAt?: string;
  /** Set when the vault keeps a soft-deleted copy until this date (purge protection). */
  purgeScheduledAt?: string;
}

/** Versioned secrets, as Key Vault keeps them: every set makes a new version. */
export interface SecretStore {
  /** The newest version, or the given one; undefined when the secret does not exist. */
  get(name: string, version?: string): Promise<SecretVersion | undefined>;
  set(name: string, value: string): Promise<SecretVersion>;
  /** Deletes every version and purges it where the vault allows (crypto-shredding). */
  destroy(name: string): Promise<DestroyedSecret | undefined>;
}

class SecretNameError extends Error {
  override name = 'SecretNameError';
}

const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;
function checkName(name: string): void {
  if (!SECRET_NAME.test(name)) throw new SecretNameError('secret names are 1-127 letters, digits and dashes');
}

/** Azure Key Vault secrets through the managed identity (DefaultAzureCredential in production). */
export class KeyVaultSecretStore implements SecretStore {
  readonly #client: SecretClient;

  constructor(
    vaultUrl: string,
    credential: TokenCredential,
    options: ConstructorParameters<typeof SecretClient>[2] = {},
  ) {
    this.#client = new SecretClient(vaultUrl, credential, options);
  }

  async destroy(name: string): Promise<DestroyedSecret | undefined> {
    checkName(name);
    let deleted;
    try {
      const poller = await this.#client.beginDeleteSecret(name);
      deleted = await poller.pollUntilDone();
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
      try {
        deleted = await this.#client.getDeletedSecret(name); // deleted before, not purged yet
      } catch (inner) {
        if ((inner as { statusCode?: number }).statusCode === 404) return undefined;
        throw inner;
      }
    }
    const deletedAt = (deleted.properties.deletedOn ?? new Date()).toISOString();
    try {
      await this.#client.purgeDeletedSecret(name);
      return { name, deletedAt, purgedAt: new Date().toISOString() };
    } catch (error) {
      // Purge protection: the vault purges it itself at the end of its soft-delete window.
      if ((error as { statusCode?: number }).statusCode !== 403) throw error;
      const scheduled = deleted.properties.scheduledPurgeDate;
      return { name, deletedAt, ...(scheduled ? { purgeScheduledAt: scheduled.toISOString() } : {}) };
    }
  }

  async get(name: string, version?: string): Promise<SecretVersion | undefined> {
    checkName(name);
    try {
      const secret = await this.#client.getSecret(name, version ? { version } : {});
      if (secret.value === undefined || secret.properties.version === undefined) return undefined;
      return {
        name,
        version: secret.properties.version,
        value: secret.value,
        ...(secret.properties.createdOn ? { createdOn: secret.properties.createdOn.toISOString() } : {}),
      };
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined;
      throw error;
    }
  }

  async set(name: string, value: string): Promise<SecretVersion> {
    checkName(name);
    const secret = await this.#client.setSecret(name, value, { contentType: 'application/octet-stream;base64' });
    if (secret.properties.version === undefined) throw new Error('Key Vault returned a secret without a version');
    return { name, version: secret.properties.version, value };
  }
}

interface StoredVersion {
  version: string;
  createdAt: string;
  /** base64url(nonce | ciphertext | tag), AES-256-GCM under the master key, bound to name + version. */
  wrapped: string;
}

/**
 * The development stand-in for Key Vault: one file per secret version under a folder, each value
 * wrapped with a local master key. It refuses to exist in production.
 */
export class LocalSecretStore implements SecretStore {
  readonly #directory: string;
  #masterKey: Promise<Buffer> | undefined;

  constructor(directory: string, environment: Environment) {
    if (environment === 'production') {
      throw new Error('The local key store is for development only and refuses to run in production');
    }
    this.#directory = directory;
  }

  async get(name: string, version?: string): Promise<SecretVersion | undefined> {
    checkName(name);
    const folder = join(this.#directory, 'secrets', name);
    let files: string[];
    try {
      files = (await readdir(folder)).filter((f) => f.endsWith('.json'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const stored: StoredVersion[] = [];
    for (const file of files) {
      if (version !== undefined && file !== `${version}.json`) continue;
      stored.push(JSON.parse(await readFile(join(folder, file), 'utf8')) as StoredVersion);
    }
    stored.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
    const newest = stored[0];
    if (!newest) return undefined;
    return {
      name,
      version: newest.version,
      value: this.#unwrap(await this.#master(), name, newest),
      createdOn: newest.createdAt.slice(0, 24), // the ISO time; a high-resolution counter follows for ordering
    };
  }

  async set(name: string, value: string): Promise<SecretVersion> {
    checkName(name);
    const version = randomBytes(16).toString('hex');
    const folder = join(this.#directory, 'secrets', name);
    await mkdir(folder, { recursive: true, mode: 0o700 });
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', await this.#master(), nonce);
    cipher.setAAD(Buffer.from(`${name}|${version}`));
    const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    const stored: StoredVersion = {
      version,
      createdAt: new Date().toISOString() + process.hrtime.bigint().toString().padStart(24, '0'),
      wrapped: Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64url'),
    };
    await writeFile(join(folder, `${version}.json`), JSON.stringify(stored), { mode: 0o600, flag: 'wx' });
    return { name, version, value };
  }

  /** Removes every version of a secret (used by deletion; Key Vault's equivalent is delete + purge). */
  async remove(name: string): Promise<void> {
    checkName(name);
    await rm(join(this.#directory, 'secrets', name), { recursive: true, force: true });
  }

  async destroy(name: string): Promise<DestroyedSecret | undefined> {
    if (!(await this.get(name))) return undefined;
    await this.remove(name);
    const now = new Date().toISOString();
    return { name, deletedAt: now, purgedAt: now };
  }

  #unwrap(master: Buffer, name: string, stored: StoredVersion): string {
    const raw = Buffer.from(stored.wrapped, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', master, raw.subarray(0, 12));
    decipher.setAAD(Buffer.from(`${name}|${stored.version}`));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8');
  }

  #master(): Promise<Buffer> {
    this.#masterKey ??= (async () => {
      await mkdir(this.#directory, { recursive: true, mode: 0o700 });
      const path = join(this.#directory, 'master.key');
      // Written aside and hard-linked into place: the first writer wins atomically when the host and
      // the admin CLI start together, and nobody reads a half-written file.
      const candidate = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
      await writeFile(candidate, randomBytes(32).toString('base64'), { mode: 0o600 });
      try {
        await link(candidate, path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      } finally {
        await unlink(candidate);
      }
      const key = Buffer.from((await readFile(path, 'utf8')).trim(), 'base64');
      if (key.length !== 32) throw new Error('the local master key file is damaged');
      return key;
    })();
    return this.#masterKey;
  }
}
