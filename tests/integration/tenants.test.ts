import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TenantKeyring } from '../../lib/crypto/keyring.js';
import { useAzurite } from '../support/azurite.js';
import { operatorActor, testServices } from '../support/services.js';

// Creating a tenant: its id claimed in the directory first, then its keys, then its profile (audited).
const azurite = useAzurite();
const meta = { actor: operatorActor, correlationId: 'tenants' };

describe('tenant creation', () => {
  it('creates one tenant with one version of each key when ten creations of the id race on two instances', async () => {
    // One key store for both instances, as they share Key Vault.
    const keyStore = mkdtempSync(join(tmpdir(), 'labvault-tenants-'));
    const instances = [
      await testServices(azurite.connectionString, undefined, keyStore),
      await testServices(azurite.connectionString, undefined, keyStore),
    ];
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => instances[i % 2]!.tenants.create('lab-race', 'Race', meta)),
    );
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const refused of outcomes.filter((o) => o.status === 'rejected'))
      expect((refused as PromiseRejectedResult).reason).toMatchObject({ kind: 'conflict' });
    for (const purpose of ['data', 'pseudonym'] as const)
      expect(
        readdirSync(join(keyStore, 'keys', 'secrets', TenantKeyring.secretName('lab-race', purpose))),
      ).toHaveLength(1);
    // Both instances compute the same pseudonyms, and the tenant's log holds one creation.
    const [a, b] = instances;
    expect(await a!.crypto.pseudonym('lab-race', 'patient-id', 'A123456789')).toBe(
      await b!.crypto.pseudonym('lab-race', 'patient-id', 'A123456789'),
    );
    const events: string[] = [];
    for await (const entry of a!.audit.list('lab-race')) events.push(entry.event);
    expect(events.filter((e) => e === 'tenant.create')).toHaveLength(1);
  });

  it('finishes a creation that stopped after claiming the id, once the claim is a minute old; not before', async () => {
    const keyStore = mkdtempSync(join(tmpdir(), 'labvault-tenants-'));
    let now = new Date();
    const services = await testServices(azurite.connectionString, () => now, keyStore);
    // What a creation that stopped right after its claim leaves: the directory row, no keys, no profile.
    await services.storage.table('platform').createEntity({
      partitionKey: 'tenant',
      rowKey: 'lab-halfway',
      name: 'Half way',
      status: 'active',
      createdAt: now.toISOString(),
    });
    await expect(services.tenants.create('lab-halfway', 'Half way', meta)).rejects.toMatchObject({
      kind: 'conflict',
    });
    now = new Date(now.getTime() + 61_000);
    expect(await services.tenants.create('lab-halfway', 'Half way', meta)).toMatchObject({ id: 'lab-halfway' });
    expect(await services.orders.list('lab-halfway', { limit: 1 }, meta)).toMatchObject({ items: [] });
    await expect(services.tenants.create('lab-halfway', 'Half way', meta)).rejects.toMatchObject({
      kind: 'conflict',
    });
  });
});
