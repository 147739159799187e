// The holder of an upload link tries to keep the plaintext original (with its EXIF) in storage:
// an infinite lease, a snapshot, uncommitted blocks, another upload after processing. Whatever
// they do, processing, retention and tenant deletion leave nothing of it.
import { BlobServiceClient, BlockBlobClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call as api, person as login, STRONG } from '../support/api.js';
import { exampleOrder } from '../support/fixtures.js';
import { jpegWithMetadata } from '../support/images.js';
import { type RunningHost, startHost } from '../support/local-host.js';

const OPERATOR_PASSWORD = 'first-start-only-password-42';
let host: RunningHost;
let operator: string;
let admin: string;
let key: string;
const call = (method: string, path: string, auth: string, body?: unknown) => api(host, method, path, auth, body);

/** Everything stored under a name in the uploads container: blobs, snapshots, versions, uncommitted blocks. */
async function traces(prefix: string): Promise<string[]> {
  const container = BlobServiceClient.fromConnectionString(host.storageConnectionString).getContainerClient(
    'specimen-uploads',
  );
  const found: string[] = [];
  for await (const b of container.listBlobsFlat({
    prefix,
    includeSnapshots: true,
    includeVersions: true,
    includeUncommitedBlobs: true,
  }))
    found.push(`${b.name}${b.snapshot ? `@${b.snapshot}` : ''}`);
  return found;
}

async function statusOf(
  orderId: string,
  imageId: string,
  until: (s: string) => boolean,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const items = (await call('GET', `/orders/${orderId}/specimens/S-0001/images`, key)).body.items as {
      imageId: string;
      status: string;
    }[];
    const image = items.find((i) => i.imageId === imageId);
    if (image && until(image.status)) return image as unknown as Record<string, unknown>;
    if (Date.now() > deadline) throw new Error(`image ${imageId}: ${JSON.stringify(image)}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

describe('an upload can always be removed, whatever the link holder did', () => {
  beforeAll(async () => {
    host = await startHost({
      env: { LABVAULT_OPERATOR_INITIAL_PASSWORD: OPERATOR_PASSWORD, LABVAULT_DURABLE_LEASE_SECONDS: '3' },
    });
    operator = await login(host, 'operator', 'operator', OPERATOR_PASSWORD);
    const tenant = await call('POST', '/tenants', operator, {
      id: 'lab-up',
      name: 'Lab Up',
      admin: { username: 'admin', email: 'a@lab-up.example' },
    });
    admin = await login(
      host,
      'lab-up',
      'admin',
      String((tenant.body.admin as { initialPassword: string }).initialPassword),
    );
    key = `ApiKey ${String((await call('POST', '/integrations', admin, { name: 'LIS', permissions: ['orders:create', 'orders:read', 'images:upload', 'images:read'], currentPassword: STRONG })).body.apiKey)}`;
  });

  afterAll(async () => {
    await host?.kill();
  });

  it('removes a leased and snapshotted upload, and one uploaded again with a lease after processing', async () => {
    const order = await call('POST', '/orders', key, exampleOrder({ externalId: 'UP-1' }));
    const orderId = String(order.body.id);
    const created = await call('POST', `/orders/${orderId}/specimens/S-0001/images`, key, {
      contentType: 'image/jpeg',
      fileName: 'slide.jpg',
    });
    const link = new BlockBlobClient(String(created.body.uploadUrl));
    const original = await jpegWithMetadata();
    await link.upload(original, original.length);
    // At once, through the link: an infinite lease and a snapshot (both allowed by a create+write SAS).
    await link
      .getBlobLeaseClient()
      .acquireLease(-1)
      .catch(() => undefined); // may lose the race with processing
    await link.createSnapshot().catch(() => undefined);
    const ready = await statusOf(orderId, String(created.body.imageId), (s) => s !== 'pending');
    expect(ready.status).toBe('ready');
    const prefix = `lab-up/${orderId}/`;
    await waitFor(async () => (await traces(prefix)).length === 0, 'the first upload to go');
    // The link still works for a while: the holder uploads again, leases and snapshots it (racing
    // the processing; tests/integration/images.test.ts does the same without the race).
    await link.upload(original, original.length);
    await link
      .getBlobLeaseClient()
      .acquireLease(-1)
      .catch(() => undefined);
    await link.createSnapshot().catch(() => undefined);
    await waitFor(async () => (await traces(prefix)).length === 0, 'the leased re-upload and its snapshot to go');
    // The image itself is untouched.
    expect((await statusOf(orderId, String(created.body.imageId), () => true)).status).toBe('ready');
  });

  it('clears uncommitted blocks with the upload, and tenant deletion removes leased blobs and lone uncommitted blocks', async () => {
    const order = await call('POST', '/orders', key, exampleOrder({ externalId: 'UP-2' }));
    const orderId = String(order.body.id);
    const created = await call('POST', `/orders/${orderId}/specimens/S-0001/images`, key, {
      contentType: 'image/jpeg',
      fileName: 'slide.jpg',
    });
    const link = new BlockBlobClient(String(created.body.uploadUrl));
    // Blocks staged, some committed, one left uncommitted on purpose.
    const blockA = Buffer.from('block-a').toString('base64');
    const blockB = Buffer.from('block-b').toString('base64');
    const original = await jpegWithMetadata();
    await link.stageBlock(blockA, original, original.length);
    await link.stageBlock(blockB, Buffer.from('Patient Erika Mustermann, born 1964-08-12'), 42);
    await link.commitBlockList([blockA]);
    await statusOf(orderId, String(created.body.imageId), (s) => s !== 'pending');
    const prefix = `lab-up/${orderId}/`;
    await waitFor(async () => (await traces(prefix)).length === 0, 'the upload and its blocks to go');
    // After processing, the holder leaves uncommitted blocks only, and leases a second name.
    await link.stageBlock(blockB, Buffer.from('Patient Erika Mustermann again'), 30);
    const second = await call('POST', `/orders/${orderId}/specimens/S-0001/images`, key, {
      contentType: 'image/jpeg',
      fileName: 'second.jpg',
    });
    const secondLink = new BlockBlobClient(String(second.body.uploadUrl));
    expect((await traces(prefix)).length).toBe(1); // the uncommitted blocks are stored under the first name
    // The tenant's deletion takes everything, leases and lone blocks included.
    await call('POST', '/tenants/lab-up/termination', operator, { contractEndsAt: '2020-01-01T00:00:00Z' });
    await secondLink.upload(original, original.length);
    await secondLink
      .getBlobLeaseClient()
      .acquireLease(-1)
      .catch(() => undefined);
    expect(
      (await call('POST', '/tenants/lab-up/deletion/confirmation', admin, { currentPassword: STRONG })).status,
    ).toBe(202);
    await waitFor(
      async () => (await call('GET', '/tenants/lab-up/deletion', operator)).body.status === 'completed',
      'the deletion',
      60_000,
    );
    expect(await traces('lab-up/')).toEqual([]);
    const state = (await call('GET', '/tenants/lab-up/deletion', operator)).body as {
      certificate: { certificate: { verification: { passed: boolean } } };
    };
    expect(state.certificate.certificate.verification.passed).toBe(true);
  });
});

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}
