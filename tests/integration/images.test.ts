import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockBlobClient } from '@azure/storage-blob';
import sharp from 'sharp';
import { uploadAndProcess } from '../support/images.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError } from '../../lib/errors.js';
import { uploadPath } from '../../lib/images/images.js';
import { CONTAINERS } from '../../lib/storage/clients.js';
import { useAzurite } from '../support/azurite.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { exampleOrder } from '../support/fixtures.js';
import { jpegWithMetadata, plainPng, pngBombHeader, rotatedJpeg, withJpegComment } from '../support/images.js';
import { operatorActor, type TestServices, testServices } from '../support/services.js';

const azurite = useAzurite();
/** One key store for every services instance of this file, as instances share Key Vault. */
const keyStore = mkdtempSync(join(tmpdir(), 'labvault-images-'));
let s: TestServices;
let orderId: string;
const meta = { actor: { type: 'integration' as const, id: 'lis' }, correlationId: 'test' };

async function upload(
  bytes: Buffer,
  fileName = 'photo.jpg',
  contentType = 'image/jpeg',
): Promise<{ imageId: string; status: string }> {
  const created = await s.images.createUpload('lab-img', orderId, 'S-0001', { contentType, fileName }, meta);
  const status = await uploadAndProcess(
    s,
    { tenant: 'lab-img', orderId, specimenId: 'S-0001', imageId: created.imageId },
    bytes,
  );
  return { imageId: created.imageId, status };
}

/** Everything stored under a prefix of the uploads container: blobs, snapshots, versions, uncommitted blocks. */
async function uploadTraces(prefix: string): Promise<string[]> {
  const found: string[] = [];
  const container = s.storage.blobService.getContainerClient('specimen-uploads');
  for await (const b of container.listBlobsFlat({
    prefix,
    includeSnapshots: true,
    includeVersions: true,
    includeUncommitedBlobs: true,
  }))
    found.push(`${b.name}${b.snapshot ? `@${b.snapshot}` : ''}`);
  return found;
}

async function record(imageId: string) {
  const all = await s.images.list('lab-img', orderId, 'S-0001', meta);
  const found = all.find((r) => r.imageId === imageId);
  if (!found) throw new Error('no record');
  return found;
}

async function rawBlob(container: string, name: string): Promise<Buffer> {
  return s.storage.blobService.getContainerClient(container).getBlobClient(name).downloadToBuffer();
}

describe('specimen images', () => {
  beforeAll(async () => {
    s = await testServices(azurite.connectionString, undefined, keyStore);
    await s.tenants.create('lab-img', 'Image Lab', { actor: operatorActor, correlationId: 'setup' });
    await s.tenants.create('lab-other', 'Other Lab', { actor: operatorActor, correlationId: 'setup' });
    orderId = (await s.orders.create('lab-img', exampleOrder(), meta)).order.id;
  });

  it('issues a write-only upload URL for one blob, valid 15 minutes, only for an existing order and specimen', async () => {
    const created = await s.images.createUpload(
      'lab-img',
      orderId,
      'S-0001',
      { contentType: 'image/jpeg', fileName: 'Mustermann.jpg' },
      meta,
    );
    const url = new URL(created.uploadUrl);
    expect(url.pathname).toBe(
      `/devstoreaccount1/${CONTAINERS.uploads}/${uploadPath('lab-img', orderId, 'S-0001', created.imageId)}`,
    );
    expect(url.searchParams.get('sp')).toBe('cw');
    expect(url.searchParams.get('sr')).toBe('b');
    const minutes = (Date.parse(created.expiresAt) - Date.now()) / 60_000;
    expect(minutes).toBeGreaterThan(14);
    expect(minutes).toBeLessThanOrEqual(15);
    // The URL can write its blob but not read it back.
    const put = await fetch(created.uploadUrl, {
      method: 'PUT',
      headers: { 'x-ms-blob-type': 'BlockBlob' },
      body: Buffer.from('x'),
    });
    expect(put.status).toBe(201);
    expect((await fetch(created.uploadUrl)).status).toBe(403);
    for (const [tenant, order, specimen] of [
      ['lab-other', orderId, 'S-0001'],
      ['lab-img', orderId, 'S-9999'],
      ['lab-img', '0'.repeat(32), 'S-0001'],
    ] as const) {
      await expect(
        s.images.createUpload(tenant, order, specimen, { contentType: 'image/jpeg', fileName: 'x.jpg' }, meta),
      ).rejects.toMatchObject({ kind: 'not-found' });
    }
  });

  it('removes GPS EXIF, XMP and comments, and stores only ciphertext', async () => {
    const original = await jpegWithMetadata();
    expect(original.includes(Buffer.from('SecretCam'))).toBe(true);
    const { imageId, status } = await upload(original, 'Erika Mustermann.jpg');
    expect(status).toBe('ready');
    const { bytes, contentType } = await s.images.read(
      'lab-img',
      { orderId, specimenId: 'S-0001', imageId },
      'image',
      meta,
    );
    expect(contentType).toBe('image/jpeg');
    const meta2 = await sharp(bytes).metadata();
    expect(meta2.exif).toBeUndefined();
    expect(meta2.xmp).toBeUndefined();
    expect(meta2.icc).toBeUndefined();
    expect(meta2.comments ?? []).toEqual([]);
    for (const leak of ['SecretCam', 'SN-4711', 'Mustermann', 'xmpmeta', 'Exif', 'GPS', 'Anna Schmidt'])
      expect(bytes.includes(Buffer.from(leak))).toBe(false);
    const rec = await record(imageId);
    expect(rec).toMatchObject({
      status: 'ready',
      fileName: 'Erika Mustermann.jpg',
      width: 320,
      height: 240,
      contentType: 'image/jpeg',
      uploadBytes: original.length,
    });
    expect(rec.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(rec.uploadSha256).not.toBe(rec.sha256);

    const raw = await rawBlob(CONTAINERS.images, `lab-img/${orderId}/S-0001/${imageId}/image`);
    expect(raw.subarray(0, 4).toString()).toBe('LVC1');
    expect(raw.includes(bytes.subarray(0, 64))).toBe(false);
    const thumb = await s.images.read('lab-img', { orderId, specimenId: 'S-0001', imageId }, 'thumbnail', meta);
    expect((await sharp(thumb.bytes).metadata()).format).toBe('jpeg');
    // The upload is gone once processed.
    expect(
      await s.storage.blobService
        .getContainerClient(CONTAINERS.uploads)
        .getBlobClient(uploadPath('lab-img', orderId, 'S-0001', imageId))
        .exists(),
    ).toBe(false);
  });

  it('applies the EXIF orientation to the pixels', async () => {
    const { imageId } = await upload(await rotatedJpeg());
    const out = await s.images.read('lab-img', { orderId, specimenId: 'S-0001', imageId }, 'image', meta);
    const m = await sharp(out.bytes).metadata();
    expect([m.width, m.height]).toEqual([100, 200]);
    expect(m.orientation).toBeUndefined();
  });

  it('makes thumbnails of at most 512 px', async () => {
    const big = await sharp({ create: { width: 2000, height: 1000, channels: 3, background: 'white' } })
      .jpeg()
      .toBuffer();
    const { imageId } = await upload(big);
    const thumb = await s.images.read('lab-img', { orderId, specimenId: 'S-0001', imageId }, 'thumbnail', meta);
    const m = await sharp(thumb.bytes).metadata();
    expect([m.width, m.height]).toEqual([512, 256]);
  });

  it('takes the type from the bytes: a PNG named .jpg is a PNG', async () => {
    const { imageId, status } = await upload(await plainPng(), 'scan.jpg', 'image/jpeg');
    expect(status).toBe('ready');
    expect(await record(imageId)).toMatchObject({ contentType: 'image/png', declaredContentType: 'image/jpeg' });
    expect(
      (await s.images.read('lab-img', { orderId, specimenId: 'S-0001', imageId }, 'image', meta)).contentType,
    ).toBe('image/png');
  });

  it.each([
    ['a text file named .jpg', Buffer.from('just some text, not an image'), 'unsupported-type'],
    ['a zero-byte file', Buffer.alloc(0), 'empty'],
    ['a truncated JPEG', async () => (await jpegWithMetadata()).subarray(0, 900), 'corrupt'],
    ['a 20000 x 20000 PNG bomb', () => pngBombHeader(), 'too-many-pixels'],
    ['a GIF', Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1'), 'unsupported-type'],
    ['an SVG', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'), 'unsupported-type'],
  ])('quarantines %s with the reason, encrypted', async (_label, input, reason) => {
    const bytes = typeof input === 'function' ? await input() : input;
    const { imageId, status } = await upload(bytes, 'bad.jpg');
    expect(status).toBe('rejected');
    expect(await record(imageId)).toMatchObject({ status: 'rejected', reason });
    const quarantined = await rawBlob(CONTAINERS.quarantine, uploadPath('lab-img', orderId, 'S-0001', imageId));
    expect(quarantined.subarray(0, 4).toString()).toBe('LVC1');
    await expect(
      s.images.read('lab-img', { orderId, specimenId: 'S-0001', imageId }, 'image', meta),
    ).rejects.toMatchObject({ kind: 'not-found' });
  });

  it('gives one image when the same upload is processed twice', async () => {
    const bytes = withJpegComment(await plainPngAsJpeg(), 'x');
    const { imageId } = await upload(bytes);
    const again = await uploadAndProcess(s, { tenant: 'lab-img', orderId, specimenId: 'S-0001', imageId }, bytes);
    expect(again).toBe('ready');
    const all = await s.images.list('lab-img', orderId, 'S-0001', meta);
    expect(all.filter((r) => r.imageId === imageId)).toHaveLength(1);
  });

  it('answers other tenants with 404 and audits every read without personal data', async () => {
    const { imageId } = await upload(await plainPngAsJpeg());
    await expect(
      s.images.read('lab-other', { orderId, specimenId: 'S-0001', imageId }, 'image', meta),
    ).rejects.toBeInstanceOf(NotFoundError);
    await expect(s.images.list('lab-other', orderId, 'S-0001', meta)).rejects.toMatchObject({ kind: 'not-found' });
    await s.images.read('lab-img', { orderId, specimenId: 'S-0001', imageId }, 'thumbnail', meta);
    const events = [];
    for await (const e of s.audit.list('lab-img', { entity: imageId })) events.push(e);
    expect(events.map((e) => e.event)).toEqual(
      expect.arrayContaining(['image.upload-url', 'image.process', 'image.thumbnail.read']),
    );
    expect(JSON.stringify(events)).not.toContain('Mustermann');
    expect((await s.audit.verify('lab-img')).valid).toBe(true);
  });

  it('removes an upload whatever its link holder did: an infinite lease, snapshots, uncommitted blocks (Azurite; Azure adds versions and soft delete)', async () => {
    const created = await s.images.createUpload(
      'lab-img',
      orderId,
      'S-0001',
      { contentType: 'image/jpeg', fileName: 'leased.jpg' },
      meta,
    );
    const link = new BlockBlobClient(created.uploadUrl);
    const bytes = await jpegWithMetadata();
    await link.stageBlock(Buffer.from('one').toString('base64'), bytes, bytes.length);
    await link.commitBlockList([Buffer.from('one').toString('base64')]);
    await link.stageBlock(Buffer.from('two').toString('base64'), Buffer.from('left uncommitted'), 16);
    await link.createSnapshot();
    await link.createSnapshot();
    await link.getBlobLeaseClient().acquireLease(-1);
    const prefix = `lab-img/${orderId}/S-0001/${created.imageId}`;
    expect((await uploadTraces(prefix)).length).toBe(3);
    expect(
      await s.images.processUpload({ tenant: 'lab-img', orderId, specimenId: 'S-0001', imageId: created.imageId }),
    ).toBe('ready');
    expect(await uploadTraces(prefix)).toEqual([]);
    // Uncommitted blocks alone (staged after processing) go with the image's deletion (retention).
    await link.stageBlock(Buffer.from('three').toString('base64'), Buffer.from('late'), 4);
    expect(await uploadTraces(prefix)).toHaveLength(1);
    const rows = [];
    for await (const row of s.images.rows('lab-img', { orderId })) if (row.imageId === created.imageId) rows.push(row);
    await s.images.deleteImage('lab-img', rows[0] as NonNullable<(typeof rows)[0]>, meta, 'retention');
    expect(await uploadTraces(prefix)).toEqual([]);
  });

  it('refuses an oversized upload from its size, reading it once: keeps its size and hash, deletes it', async () => {
    const created = await s.images.createUpload(
      'lab-img',
      orderId,
      'S-0001',
      { contentType: 'image/jpeg', fileName: 'huge.jpg' },
      meta,
    );
    const size = 51 * 1024 * 1024;
    const big = Buffer.alloc(size, 7);
    await new BlockBlobClient(created.uploadUrl).uploadData(big);
    // Processed by an instance whose storage requests a proxy counts.
    const proxy = await startFaultProxy(azurite.instance.ports);
    try {
      const counted = await testServices(proxy.connectionString, undefined, keyStore);
      expect(
        await counted.images.processUpload({
          tenant: 'lab-img',
          orderId,
          specimenId: 'S-0001',
          imageId: created.imageId,
        }),
      ).toBe('rejected');
      // Read once: the length from the download's own headers, the bytes streamed through the hash.
      expect(proxy.requestsByKind().get('blob GET specimen-uploads')).toBe(1);
    } finally {
      await proxy.close();
    }
    expect(await record(created.imageId)).toMatchObject({
      status: 'rejected',
      reason: 'too-large',
      uploadBytes: size,
      uploadSha256: createHash('sha256').update(big).digest('hex'),
    });
    expect(await uploadTraces(`lab-img/${orderId}/S-0001/${created.imageId}`)).toEqual([]);
    // Nothing of it went to quarantine either.
    const quarantined = [];
    for await (const b of s.storage.blobService
      .getContainerClient('quarantine')
      .listBlobsFlat({ prefix: `lab-img/${orderId}/S-0001/${created.imageId}` }))
      quarantined.push(b.name);
    expect(quarantined).toEqual([]);
  });

  it('deletes quarantined uploads after 7 days', async () => {
    const later = await testServices(azurite.connectionString, () => new Date(Date.now() + 8 * 24 * 3600 * 1000));
    expect(await later.images.purgeQuarantine()).toBeGreaterThan(0);
    const left = [];
    for await (const b of s.storage.blobService.getContainerClient(CONTAINERS.quarantine).listBlobsFlat())
      left.push(b.name);
    expect(left).toEqual([]);
  });
});

async function plainPngAsJpeg(): Promise<Buffer> {
  return sharp(await plainPng())
    .jpeg()
    .toBuffer();
}
