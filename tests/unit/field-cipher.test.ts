import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DecryptionError,
  decryptWithKey,
  encryptWithKey,
  type FieldBinding,
  normaliseIdentifier,
  parseEnvelope,
  pseudonymWithKey,
} from '../../lib/crypto/field-cipher.js';

const key = randomBytes(32);
const otherKey = randomBytes(32);
const binding = fc.record({
  tenant: fc.stringMatching(/^[a-z0-9-]{3,20}$/),
  record: fc.stringMatching(/^[0-9a-f]{8,32}$/),
  field: fc.constantFrom('patient', 'orderingPhysician', 'specimens', 'clinicalInformation'),
});
const plaintext = fc.uint8Array({ minLength: 0, maxLength: 2048 }).map((a) => Buffer.from(a));

function decrypt(k: Buffer, b: FieldBinding, envelope: string): Buffer {
  return decryptWithKey(k, b, parseEnvelope(envelope).raw);
}

describe('field encryption (AES-256-GCM, bound to tenant, record and field)', () => {
  it('round-trips any bytes and names the key version in the envelope', () => {
    fc.assert(
      fc.property(binding, plaintext, (b, p) => {
        const envelope = encryptWithKey(key, 'v7', b, p);
        expect(parseEnvelope(envelope).keyVersion).toBe('v7');
        expect(decrypt(key, b, envelope).equals(p)).toBe(true);
      }),
    );
  });

  it('uses a fresh nonce each time, so equal plaintexts give different ciphertexts', () => {
    const b = { tenant: 't1', record: 'r1', field: 'patient' };
    expect(encryptWithKey(key, 'v1', b, Buffer.from('same'))).not.toBe(
      encryptWithKey(key, 'v1', b, Buffer.from('same')),
    );
  });

  it('fails on any flipped byte', () => {
    fc.assert(
      fc.property(binding, plaintext, fc.nat(), fc.integer({ min: 1, max: 255 }), (b, p, position, mask) => {
        const { raw } = parseEnvelope(encryptWithKey(key, 'v1', b, p));
        const i = position % raw.length;
        raw[i] = (raw[i] ?? 0) ^ mask;
        expect(() => decryptWithKey(key, b, raw)).toThrowError(DecryptionError);
      }),
    );
  });

  it('fails for another field, another record, another tenant or another key', () => {
    fc.assert(
      fc.property(binding, binding, plaintext, (b, other, p) => {
        fc.pre(b.tenant !== other.tenant || b.record !== other.record || b.field !== other.field);
        const envelope = encryptWithKey(key, 'v1', b, p);
        expect(() =>
          decrypt(key, { ...b, field: b.field === 'patient' ? 'specimens' : 'patient' }, envelope),
        ).toThrowError(DecryptionError);
        expect(() => decrypt(key, other, envelope)).toThrowError(DecryptionError);
        expect(() => decrypt(otherKey, b, envelope)).toThrowError(DecryptionError);
      }),
    );
  });

  it('rejects envelopes that are not ours', () => {
    for (const bad of ['', 'v1', 'v2.k.AAAA', 'v1..AAAA', 'v1.k.AA'])
      expect(() => parseEnvelope(bad)).toThrowError(DecryptionError);
  });
});

describe('pseudonyms (HMAC-SHA256 with the tenant key)', () => {
  it('are stable for one tenant key and differ between tenants and kinds', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }), (id) => {
        expect(pseudonymWithKey(key, 'patient-id', id)).toBe(pseudonymWithKey(key, 'patient-id', id));
        expect(pseudonymWithKey(key, 'patient-id', id)).not.toBe(pseudonymWithKey(otherKey, 'patient-id', id));
        expect(pseudonymWithKey(key, 'patient-id', id)).not.toBe(pseudonymWithKey(key, 'external-id', id));
      }),
    );
  });

  it('normalise case, spaces and Unicode forms before hashing', () => {
    expect(normaliseIdentifier(' a12 345 ')).toBe('A12345');
    expect(pseudonymWithKey(key, 'patient-id', 'ａ123')).toBe(pseudonymWithKey(key, 'patient-id', 'A123'));
    expect(pseudonymWithKey(key, 'patient-id', 'A123')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});
