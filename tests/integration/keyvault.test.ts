import type { AccessToken, TokenCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptWithKey, encryptWithKey, parseEnvelope } from '../../lib/crypto/field-cipher.js';
import { TenantKeyring } from '../../lib/crypto/keyring.js';
import { KeyVaultSecretStore } from '../../lib/crypto/secret-store.js';
import { KeyVaultStandIn } from '../support/keyvault-standin.js';

const vault = new KeyVaultStandIn();
const credential: TokenCredential = {
  getToken: async (): Promise<AccessToken> => ({ token: 'test-token', expiresOnTimestamp: Date.now() + 3600_000 }),
};
let store: KeyVaultSecretStore;

describe('tenant keys in Key Vault, through the real @azure/keyvault-secrets client', () => {
  beforeAll(async () => {
    await vault.start();
    store = new KeyVaultSecretStore(vault.url, credential, {
      disableChallengeResourceVerification: true,
      tlsOptions: { ca: vault.ca },
      retryOptions: { maxRetries: 0 },
    });
  });

  afterAll(async () => {
    await vault.stop();
  });

  it('keeps one versioned secret per tenant key; older versions still decrypt', async () => {
    const keyring = new TenantKeyring({ secrets: store });
    await keyring.ensureTenantKeys('lab-kv');
    expect([...vault.secrets.keys()].sort()).toEqual(['tenant-lab-kv-data', 'tenant-lab-kv-pseudonym']);
    const first = await keyring.currentDataKey('lab-kv');
    const envelope = encryptWithKey(
      first.key,
      first.version,
      { tenant: 'lab-kv', record: 'r', field: 'f' },
      Buffer.from('hello'),
    );
    await keyring.rotateDataKey('lab-kv');
    expect(vault.secrets.get('tenant-lab-kv-data')).toHaveLength(2);
    const old = await new TenantKeyring({ secrets: store }).dataKeyVersion(
      'lab-kv',
      parseEnvelope(envelope).keyVersion,
    );
    expect(
      decryptWithKey(old, { tenant: 'lab-kv', record: 'r', field: 'f' }, parseEnvelope(envelope).raw).toString(),
    ).toBe('hello');
  });

  it('destroys a key: delete, then purge, and nothing is left', async () => {
    await store.set('tenant-lab-gone-data', Buffer.alloc(32, 1).toString('base64'));
    const destroyed = await store.destroy('tenant-lab-gone-data');
    expect(destroyed?.purgedAt).toBeDefined();
    expect(vault.secrets.has('tenant-lab-gone-data')).toBe(false);
    expect(vault.deleted.has('tenant-lab-gone-data')).toBe(false);
    expect(await store.get('tenant-lab-gone-data')).toBeUndefined();
  });

  it('records when the vault will purge a key that purge protection keeps soft-deleted', async () => {
    vault.purgeProtection = true;
    try {
      await store.set('tenant-lab-held-data', Buffer.alloc(32, 2).toString('base64'));
      const destroyed = await store.destroy('tenant-lab-held-data');
      expect(destroyed?.purgedAt).toBeUndefined();
      const days =
        (Date.parse(destroyed?.purgeScheduledAt ?? '') - Date.parse(destroyed?.deletedAt ?? '')) / 86_400_000;
      expect(Math.round(days)).toBe(90);
      expect(vault.deleted.has('tenant-lab-held-data')).toBe(true);
      expect(await store.get('tenant-lab-held-data')).toBeUndefined();
    } finally {
      vault.purgeProtection = false;
    }
  });

  it('answers undefined for a key that never existed', async () => {
    expect(await store.get('tenant-nobody-data')).toBeUndefined();
    expect(await store.destroy('tenant-nobody-data')).toBeUndefined();
  });
});
