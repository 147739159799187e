import { BlobServiceClient } from '@azure/storage-blob';
import { QueueClient } from '@azure/storage-queue';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_DEAD_LETTER_QUEUE, POISON_QUEUE } from '../../local-host/blob-watcher.js';
import { exampleOrder } from '../support/fixtures.js';
import { fuzzedImageFiles } from '../support/images.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';
import { httpCall, pool, recordFigures } from './support.js';

const CASES = Number(process.env.LABVAULT_IMAGE_FUZZ_CASES ?? 80);
let host: RunningHost;
let key: string;

const REASONS = ['empty', 'too-large', 'unsupported-type', 'too-many-pixels', 'corrupt'];

describe(`fuzzing the blob trigger with ${CASES} random and mutated image files`, () => {
  beforeAll(async () => {
    host = await startHost();
    admin(host.dataDir, ['tenant', 'create', '--id', 'lab-img-fuzz', '--name', 'Image Fuzz']);
    key = `ApiKey ${String(admin(host.dataDir, ['integration', 'create', '--tenant', 'lab-img-fuzz', '--name', 'x', '--permissions', 'orders:create,images:upload,images:read']).json?.apiKey)}`;
  });

  afterAll(async () => {
    await host?.kill();
  });

  it('ends every upload ready (with an image that decodes) or rejected with a reason, never stuck, never poison, never a 5xx', async () => {
    const uploads = await fuzzedImageFiles(CASES);
    const api = (method: string, path: string, body?: unknown) =>
      httpCall(`${host.apiBaseUrl}${path}`, {
        method,
        headers: { authorization: key, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
    const cases = await pool(uploads.length, 4, async (i) => {
      const order = JSON.parse((await api('POST', '/orders', exampleOrder({ externalId: `IF-${i}` }))).text) as {
        id: string;
      };
      const upload = JSON.parse(
        (
          await api('POST', `/orders/${order.id}/specimens/S-0001/images`, {
            contentType: i % 2 ? 'image/png' : 'image/jpeg',
            fileName: `f${i}`,
          })
        ).text,
      ) as { uploadUrl: string; imageId: string };
      const put = await fetch(upload.uploadUrl, {
        method: 'PUT',
        headers: { 'x-ms-blob-type': 'BlockBlob' },
        body: uploads[i],
      });
      expect(put.status).toBe(201);
      return { orderId: order.id, imageId: upload.imageId };
    });
    const outcomes: Record<string, number> = {};
    await pool(cases.length, 4, async (i) => {
      const { orderId, imageId } = cases[i] ?? { orderId: '', imageId: '' };
      let record: { status: string; reason?: string } = { status: 'pending' };
      for (let attempt = 0; attempt < 300 && record.status === 'pending'; attempt++) {
        const list = await api('GET', `/orders/${orderId}/specimens/S-0001/images`);
        expect(list.status).toBe(200);
        record = (JSON.parse(list.text) as { items: { status: string; reason?: string }[] }).items[0] ?? record;
        if (record.status === 'pending') await new Promise((r) => setTimeout(r, 100));
      }
      expect(record.status, `case ${i}`).not.toBe('pending');
      const outcome = record.status === 'ready' ? 'ready' : `rejected:${record.reason ?? ''}`;
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      const image = await api('GET', `/orders/${orderId}/specimens/S-0001/images/${imageId}`);
      if (record.status === 'ready') {
        expect(image.status).toBe(200);
        expect((await sharp(image.body).metadata()).width).toBeGreaterThan(0);
      } else {
        expect(REASONS).toContain(record.reason);
        expect(image.status).toBeGreaterThanOrEqual(400);
        expect(image.status).toBeLessThan(500);
      }
    });
    // A rejected file leaves no image behind; no event was dead-lettered; nothing logged an error.
    const blobs = BlobServiceClient.fromConnectionString(host.storageConnectionString);
    let stored = 0;
    for await (const _ of blobs.getContainerClient('specimen-images').listBlobsFlat({ prefix: 'lab-img-fuzz/' }))
      stored++;
    expect(stored).toBe(2 * (outcomes.ready ?? 0));
    for (const name of [POISON_QUEUE, EVENT_DEAD_LETTER_QUEUE]) {
      const poison = new QueueClient(host.storageConnectionString, name);
      expect(
        (await poison.exists()) ? (await poison.peekMessages({ numberOfMessages: 32 })).peekedMessageItems : [],
        name,
      ).toEqual([]);
    }
    expect(host.output()).not.toContain('"level":"error"');
    recordFigures('imageFuzz', { cases: uploads.length, outcomes });
  });
});
