import { compactVerify, createLocalJWKSet } from 'jose';
import { uploadAndProcess } from '../support/images.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { decryptWithKey, parseEnvelope } from '../../lib/crypto/field-cipher.js';
import { TenantKeyring } from '../../lib/crypto/keyring.js';
import { onboardTenant } from '../../lib/tenants/onboarding.js';
import { useAzurite } from '../support/azurite.js';
import { exampleOrder } from '../support/fixtures.js';
import { plainPng } from '../support/images.js';
import { problemOf } from '../support/problems.js';
import { operatorActor, type TestServices, testServices } from '../support/services.js';

const azurite = useAzurite();
let s: TestServices;
let past: TestServices;
const meta = { actor: { type: 'integration' as const, id: 'lis' }, correlationId: 'retention' };
const YEAR = 365 * 24 * 3600 * 1000;

async function rawRows(tenant: string): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for await (const table of s.storage.tableService.listTables()) {
    for await (const row of s.storage.table(table.name ?? '').listEntities<Record<string, unknown>>()) {
      if (String(row.partitionKey).startsWith(`${tenant}~`) || (row.partitionKey === 'tenant' && row.rowKey === tenant))
        rows.push(row);
    }
  }
  return rows;
}

async function rawBlobs(tenant: string): Promise<string[]> {
  const names: string[] = [];
  for await (const c of s.storage.blobService.listContainers()) {
    for await (const b of s.storage.blobService.getContainerClient(c.name).listBlobsFlat({ prefix: `${tenant}/` }))
      names.push(`${c.name}/${b.name}`);
  }
  return names;
}

describe('retention and deletion', () => {
  beforeAll(async () => {
    s = await testServices(azurite.connectionString);
    // The same storage and keys, eleven years ago: orders made then are due now.
    past = await testServices(azurite.connectionString, () => new Date(Date.now() - 11 * YEAR), s.config.dataDir);
    for (const tenant of ['lab-ret', 'lab-gone', 'lab-stays'])
      await s.tenants.create(tenant, tenant, { actor: operatorActor, correlationId: 'setup' });
  });

  it('certifies a key destroyed by an attempt cut off before it recorded the result, once', async () => {
    await s.tenants.create('lab-cut', 'lab-cut', { actor: operatorActor, correlationId: 'setup' });
    const destroy = s.secrets.destroy.bind(s.secrets);
    let calls = 0;
    // The vault deletes the data key, then the activity dies before it records that.
    s.secrets.destroy = async (name: string) => {
      const result = await destroy(name);
      if (++calls === 1) throw new Error('killed after the vault deleted the key');
      return result;
    };
    await expect(s.deletion.destroyKeys('lab-cut')).rejects.toThrow('killed');
    s.secrets.destroy = destroy;
    const retried = await s.deletion.destroyKeys('lab-cut');
    expect(retried.map((k) => k.name)).toEqual(['tenant-lab-cut-data', 'tenant-lab-cut-pseudonym']);
    expect(await s.secrets.get('tenant-lab-cut-data')).toBeUndefined();
    // Run once more (another retry): the same two keys, with the same times.
    expect(await s.deletion.destroyKeys('lab-cut')).toEqual(retried);
  });

  it('keeps the policy within the operator’s bounds, and images never outlive their order', async () => {
    expect(await s.retention.policy('lab-ret')).toEqual({
      imagesDays: 3650,
      ordersDays: 3650,
      afterContractEndDays: 30,
    });
    expect(
      (
        await problemOf(
          s.retention.setPolicy('lab-ret', { imagesDays: 30, ordersDays: 365, afterContractEndDays: 30 }, meta),
        )
      ).extras.errors?.[0]?.path,
    ).toBe('/ordersDays');
    expect(
      (
        await problemOf(
          s.retention.setPolicy('lab-ret', { imagesDays: 4000, ordersDays: 3650, afterContractEndDays: 30 }, meta),
        )
      ).extras.errors?.map((e) => e.message),
    ).toContain('images never outlive their order: at most ordersDays');
    expect(
      (
        await problemOf(
          s.retention.setBounds(
            'lab-ret',
            {
              minOrdersDays: 1,
              maxOrdersDays: 10,
              minImagesDays: 1,
              maxImagesDays: 10,
              minAfterContractEndDays: 7,
              maxAfterContractEndDays: 30,
            },
            meta,
          ),
        )
      ).status,
    ).toBe(422);
    await s.retention.setPolicy('lab-ret', { imagesDays: 30, ordersDays: 3650, afterContractEndDays: 30 }, meta);
  });

  it('deletes due orders with their index rows, images and blobs, audited, and the chain still verifies', async () => {
    const old = await past.orders.create('lab-ret', exampleOrder({ externalId: 'OLD-1' }), meta);
    const upload = await past.images.createUpload(
      'lab-ret',
      old.order.id,
      'S-0001',
      { contentType: 'image/png', fileName: 'a.png' },
      meta,
    );
    await uploadAndProcess(
      past,
      { tenant: 'lab-ret', orderId: old.order.id, specimenId: 'S-0001', imageId: upload.imageId },
      await plainPng(),
    );
    const fresh = await s.orders.create('lab-ret', exampleOrder({ externalId: 'NEW-1' }), meta);
    const result = await s.deletion.deleteDue('lab-ret', new Date(), meta);
    expect(result).toEqual({ orders: 1, images: 1 });
    const rows = await rawRows('lab-ret');
    expect(rows.some((r) => String(r.rowKey).includes(old.order.id))).toBe(false);
    expect(
      rows.filter((r) => String(r.rowKey).startsWith('external~') || String(r.rowKey).startsWith('patient~')),
    ).toHaveLength(2); // the fresh order's
    expect((await rawBlobs('lab-ret')).some((b) => b.includes(old.order.id))).toBe(false);
    expect((await s.orders.get('lab-ret', fresh.order.id, meta)).order.externalId).toBe('NEW-1');
    const events = [];
    for await (const e of s.audit.list('lab-ret', { entity: old.order.id })) events.push(e.event);
    expect(events).toContain('order.delete');
    expect((await s.audit.verify('lab-ret')).valid).toBe(true);
    expect(await s.deletion.deleteDue('lab-ret', new Date(), meta)).toEqual({ orders: 0, images: 0 });
  });

  it('deletes a tenant irrevocably: rows, blobs, keys; the scan finds nothing; old ciphertext stays unreadable; the certificate verifies', async () => {
    const order = await s.orders.create('lab-gone', exampleOrder(), meta);
    const upload = await s.images.createUpload(
      'lab-gone',
      order.order.id,
      'S-0001',
      { contentType: 'image/png', fileName: 'x.png' },
      meta,
    );
    await uploadAndProcess(
      s,
      { tenant: 'lab-gone', orderId: order.order.id, specimenId: 'S-0001', imageId: upload.imageId },
      await plainPng(),
    );
    await s.orders.create('lab-stays', exampleOrder(), meta);
    // The hourly anchoring has run: the tenant's audit heads are in write-once storage.
    expect((await s.auditAnchors.anchor('lab-gone')).streams).toBeGreaterThan(0);
    // A copy of a ciphertext taken before (stands for a backup or geo-replica).
    const copy = (await rawRows('lab-gone')).find((r) => String(r.rowKey).startsWith('order~'))?.encPatient as string;
    const { deleteAt, noticeEndsAt } = await s.deletion.schedule(
      'lab-gone',
      new Date(Date.now() - YEAR).toISOString(),
      { actor: operatorActor, correlationId: 'x' },
    );
    // A contract that ended long ago still gets the whole notice period: 30 days from now.
    expect(deleteAt).toBe(noticeEndsAt);
    expect(Date.parse(deleteAt)).toBeGreaterThan(Date.now() + 29 * 24 * 3600 * 1000);
    expect(await s.deletion.start('lab-gone')).toEqual({ refused: 'not-due' });
    await s.deletion.confirmEarly('lab-gone', 'admin-of-lab-gone', {
      actor: { type: 'user', id: 'admin-of-lab-gone' },
      correlationId: 'x',
    });
    const started = await s.deletion.start('lab-gone');
    if (!('startedAt' in started)) throw new Error(`deletion refused: ${started.refused}`);
    const startedAt = started.startedAt;
    const rows = await s.deletion.deleteRows('lab-gone');
    const blobs = await s.deletion.deleteBlobs('lab-gone');
    const keys = await s.deletion.destroyKeys('lab-gone');
    const verification = await s.deletion.verify('lab-gone');
    // Everything is gone but the audit anchors (hashes, in the WORM container), which are named as kept.
    expect(verification).toMatchObject({ remainingRows: 0, remainingBlobs: 0, keptAuditAnchorBlobs: 1 });
    expect(await rawRows('lab-gone')).toEqual([]);
    expect(await rawBlobs('lab-gone')).toEqual([
      `audit-archive/lab-gone/${new Date().toISOString().slice(0, 7)}.ndjson`,
    ]);
    expect(keys.map((k) => k.name).sort()).toEqual(['tenant-lab-gone-data', 'tenant-lab-gone-pseudonym']);
    const fresh = new TenantKeyring({ secrets: s.secrets });
    await expect(fresh.dataKeyVersion('lab-gone', parseEnvelope(copy).keyVersion)).rejects.toThrow();
    expect(() =>
      decryptWithKey(
        Buffer.alloc(32),
        { tenant: 'lab-gone', record: order.order.id, field: 'patient' },
        parseEnvelope(copy).raw,
      ),
    ).toThrow();
    const signed = await s.deletion.certify('lab-gone', { startedAt, rows, blobs, keys, verification });
    expect(JSON.stringify(signed.certificate)).not.toMatch(/Mustermann|Erika|A123456789/);
    expect(signed.certificate).toMatchObject({
      tenant: 'lab-gone',
      verification: { passed: true },
      deleted: { blobs: expect.any(Number) },
    });
    const jwks = createLocalJWKSet((await s.deletion.verificationKeys()) as never);
    const { payload } = await compactVerify(signed.jws, jwks);
    expect(JSON.parse(new TextDecoder().decode(payload))).toEqual(signed.certificate);
    expect((await s.deletion.state('lab-gone'))?.status).toBe('completed');
    expect(await s.tenants.get('lab-gone')).toBeUndefined();
    expect(signed.certificate.kept).toEqual([expect.stringMatching(/^audit anchors: /)]);
    // The id is not handed to someone else: its certificate and anchors describe the tenant that was.
    const reuse = await problemOf(onboardTenant(s, { id: 'lab-gone', name: 'Someone else' }, meta));
    expect(reuse.status).toBe(409);
    expect(await s.tenants.get('lab-gone')).toBeUndefined();
    expect((await s.orders.list('lab-stays', { limit: 5 }, meta)).items).toHaveLength(1);
  });
});
