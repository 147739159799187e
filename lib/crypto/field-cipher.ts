import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import { pooledRandomBytes } from './random-pool.js';
import type { TenantKeyring } from './keyring.js';

/** Where a ciphertext belongs: decrypting it anywhere else fails. */
export interface FieldBinding {
  tenant: string;
  /** The record's stable id (not its storage address, which may move). */
  record: string;
  field: string;
}

export class DecryptionError extends Error {
  override name = 'DecryptionError';
}

const ENVELOPE_VERSION = 'v1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

function associatedData(binding: FieldBinding): Buffer {
  return Buffer.from(
    JSON.stringify(['labvault-field', ENVELOPE_VERSION, binding.tenant, binding.record, binding.field]),
  );
}

/** `v1.{keyVersion}.{base64url(nonce | ciphertext | tag)}` — AES-256-GCM with a random 96-bit nonce. */
export function encryptWithKey(key: Buffer, keyVersion: string, binding: FieldBinding, plaintext: Buffer): string {
  const nonce = pooledRandomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(associatedData(binding));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return `${ENVELOPE_VERSION}.${keyVersion}.${Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64url')}`;
}

export function parseEnvelope(envelope: string): { keyVersion: string; raw: Buffer } {
  const parts = envelope.split('.');
  if (parts.length !== 3 || parts[0] !== ENVELOPE_VERSION || !parts[1])
    throw new DecryptionError('not a LabVault ciphertext');
  const raw = Buffer.from(parts[2] ?? '', 'base64url');
  if (raw.length < NONCE_BYTES + TAG_BYTES) throw new DecryptionError('ciphertext too short');
  return { keyVersion: parts[1], raw };
}

export function decryptWithKey(key: Buffer, binding: FieldBinding, raw: Buffer): Buffer {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, NONCE_BYTES));
    decipher.setAAD(associatedData(binding));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    return Buffer.concat([decipher.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
  } catch {
    // Never echo the cause: it could carry fragments of the input.
    throw new DecryptionError('ciphertext failed authentication');
  }
}

/** Normalises an identifier before pseudonymisation: NFKC, no whitespace, upper case. */
export function normaliseIdentifier(identifier: string): string {
  return identifier.normalize('NFKC').replace(/\s+/gu, '').toUpperCase();
}

/** Keyed pseudonym (HMAC-SHA256), separated by kind so an id of one kind never matches another. */
export function pseudonymWithKey(key: Buffer, kind: string, identifier: string): string {
  return createHmac('sha256', key)
    .update(`${kind}\u0000${normaliseIdentifier(identifier)}`)
    .digest('base64url');
}

/** Field encryption and pseudonyms with each tenant's own keys. */
export class TenantCrypto {
  readonly #keyring: TenantKeyring;

  constructor(dependencies: { keyring: TenantKeyring }) {
    this.#keyring = dependencies.keyring;
  }

  async encryptJson(binding: FieldBinding, value: unknown): Promise<string> {
    const key = await this.#keyring.currentDataKey(binding.tenant);
    return encryptWithKey(key.key, key.version, binding, Buffer.from(JSON.stringify(value), 'utf8'));
  }

  async decryptJson<T>(binding: FieldBinding, envelope: string): Promise<T> {
    const { keyVersion, raw } = parseEnvelope(envelope);
    const key = await this.#keyring.dataKeyVersion(binding.tenant, keyVersion);
    return JSON.parse(decryptWithKey(key, binding, raw).toString('utf8')) as T;
  }

  async pseudonym(tenant: string, kind: string, identifier: string): Promise<string> {
    const key = await this.#keyring.pseudonymKey(tenant);
    return pseudonymWithKey(key.key, kind, identifier);
  }
}
