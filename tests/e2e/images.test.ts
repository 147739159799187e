import { BlobServiceClient } from '@azure/storage-blob';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleOrder } from '../support/fixtures.js';
import { jpegWithMetadata, photoJpeg } from '../support/images.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';

let host: RunningHost;
let key: string;
let orderId: string;

const auth = () => ({ authorization: `ApiKey ${key}` });

async function uploadAndWait(
  bytes: Buffer,
  fileName: string,
): Promise<{ imageId: string; status: string; ms: number }> {
  const started = performance.now();
  const created = await fetch(`${host.apiBaseUrl}/orders/${orderId}/specimens/S-0001/images`, {
    method: 'POST',
    headers: { ...auth(), 'content-type': 'application/json' },
    body: JSON.stringify({ contentType: 'image/jpeg', fileName }),
  });
  expect(created.status).toBe(201);
  const { imageId, uploadUrl } = (await created.json()) as { imageId: string; uploadUrl: string };
  const put = await fetch(uploadUrl, {
    method: 'PUT',
    headers: { 'x-ms-blob-type': 'BlockBlob', 'content-type': 'image/jpeg' },
    body: bytes,
  });
  expect(put.status).toBe(201);
  for (;;) {
    const list = (await (
      await fetch(`${host.apiBaseUrl}/orders/${orderId}/specimens/S-0001/images`, { headers: auth() })
    ).json()) as { items: { imageId: string; status: string }[] };
    const status = list.items.find((i) => i.imageId === imageId)?.status ?? 'missing';
    if (status !== 'pending') return { imageId, status, ms: performance.now() - started };
    if (performance.now() - started > 30_000) throw new Error('image never left pending');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('specimen images through the local host', () => {
  beforeAll(async () => {
    host = await startHost();
    admin(host.dataDir, ['tenant', 'create', '--id', 'lab-pics', '--name', 'Pics']);
    key = String(
      admin(host.dataDir, [
        'integration',
        'create',
        '--tenant',
        'lab-pics',
        '--name',
        'LIS',
        '--permissions',
        'orders:create,images:upload,images:read',
      ]).json?.apiKey,
    );
    const order = await fetch(`${host.apiBaseUrl}/orders`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify(exampleOrder()),
    });
    orderId = String(((await order.json()) as { id: string }).id);
  });

  afterAll(async () => {
    await host?.kill();
  });

  it('takes an upload through the SAS URL, processes it in the blob trigger, and serves it decrypted and clean', async () => {
    const { imageId, status } = await uploadAndWait(await jpegWithMetadata(), 'Erika.jpg');
    expect(status).toBe('ready');
    const image = await fetch(`${host.apiBaseUrl}/orders/${orderId}/specimens/S-0001/images/${imageId}`, {
      headers: auth(),
    });
    expect(image.status).toBe(200);
    expect(image.headers.get('content-type')).toBe('image/jpeg');
    expect(image.headers.get('cache-control')).toBe('no-store');
    const bytes = Buffer.from(await image.arrayBuffer());
    expect((await sharp(bytes).metadata()).exif).toBeUndefined();
    const thumb = await fetch(`${host.apiBaseUrl}/orders/${orderId}/specimens/S-0001/images/${imageId}/thumbnail`, {
      headers: auth(),
    });
    expect(thumb.headers.get('content-type')).toBe('image/jpeg');
    const raw = await BlobServiceClient.fromConnectionString(host.storageConnectionString)
      .getContainerClient('specimen-images')
      .getBlobClient(`lab-pics/${orderId}/S-0001/${imageId}/image`)
      .downloadToBuffer();
    expect(raw.subarray(0, 4).toString()).toBe('LVC1');
  });

  it('puts a bad file in quarantine with a reason', async () => {
    const { status, imageId } = await uploadAndWait(Buffer.from('MZ not an image at all'), 'evil.jpg');
    expect(status).toBe('rejected');
    const list = (await (
      await fetch(`${host.apiBaseUrl}/orders/${orderId}/specimens/S-0001/images`, { headers: auth() })
    ).json()) as { items: { imageId: string; reason?: string }[] };
    expect(list.items.find((i) => i.imageId === imageId)?.reason).toBe('unsupported-type');
  });

  it('processes 12-megapixel photos (figures for the closing note)', async () => {
    const photo = await photoJpeg(4000, 3000);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const { status, ms } = await uploadAndWait(photo, `p${i}.jpg`);
      expect(status).toBe('ready');
      times.push(ms);
    }
    process.stdout.write(`12 MP upload-to-ready: ${times.map((t) => Math.round(t)).join(', ')} ms\n`);
  });

  it('logs no patient data', () => {
    for (const leak of ['Erika', 'Mustermann', 'Anna Schmidt']) expect(host.output()).not.toContain(leak);
  });
});
