// Size before bytes: four 400 MiB uploads at once are refused from their properties, never held in
// the host's memory; the host's peak RSS (VmHWM, reset before the uploads) grows by less than 200 MB.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BlobServiceClient, BlockBlobClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleOrder } from '../support/fixtures.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';
import { callJson, recordFigures } from './support.js';

const UPLOAD_BYTES = 400 * 1024 * 1024;
const CHUNK = 4 * 1024 * 1024;
let host: RunningHost;
let key: string;
const call = (method: string, path: string, auth: string, body?: unknown) =>
  callJson(host.apiBaseUrl, method, path, auth, body);

/** A process's memory figure from /proc, in bytes (VmRSS now, VmHWM the peak since the last reset). */
function memory(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const line =
    readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${field}:`)) ?? '';
  return Number(/(\d+)\s*kB/.exec(line)?.[1] ?? 0) * 1024;
}

/** 400 MiB of a deterministic pattern, hashed as it goes out. */
function bigUpload(seed: number, hash: ReturnType<typeof createHash>): Readable {
  const chunk = Buffer.alloc(CHUNK, seed);
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= UPLOAD_BYTES) {
        this.push(null);
        return;
      }
      hash.update(chunk);
      sent += chunk.length;
      this.push(chunk);
    },
  });
}

describe('uploads: size before bytes', () => {
  beforeAll(async () => {
    host = await startHost();
    admin(host.dataDir, ['tenant', 'create', '--id', 'lab-big', '--name', 'Lab Big']);
    key = `ApiKey ${String(admin(host.dataDir, ['integration', 'create', '--tenant', 'lab-big', '--name', 'lis', '--permissions', 'orders:create,images:upload,images:read']).json?.apiKey)}`;
  });

  afterAll(async () => {
    await host?.kill();
  });

  it('refuses four 400 MiB uploads at once without reading them into memory; keeps size and hash; deletes them', async () => {
    const order = await call('POST', '/orders', key, exampleOrder({ externalId: 'BIG-1' }));
    const orderId = String(order.json.id);
    const links = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const created = await call('POST', `/orders/${orderId}/specimens/S-0001/images`, key, {
          contentType: 'image/tiff',
          fileName: `scan-${i}.tif`,
        });
        return { imageId: String(created.json.imageId), url: String(created.json.uploadUrl) };
      }),
    );
    const pid = (JSON.parse(readFileSync(join(host.dataDir, 'local-host.json'), 'utf8')) as { pid: number }).pid;
    // Resets the kernel's peak-RSS mark of the host to its current RSS (proc(5), clear_refs "5").
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    const before = memory(pid, 'VmRSS');
    const hashes = links.map(() => createHash('sha256'));
    const t0 = Date.now();
    await Promise.all(
      links.map((link, i) =>
        new BlockBlobClient(link.url).uploadStream(
          bigUpload(i + 1, hashes[i] as ReturnType<typeof createHash>),
          CHUNK,
          2,
        ),
      ),
    );
    const uploadedMs = Date.now() - t0;
    const deadline = Date.now() + 300_000;
    let items: { imageId: string; status: string; reason?: string; uploadBytes?: number; uploadSha256?: string }[] = [];
    for (;;) {
      items = (await call('GET', `/orders/${orderId}/specimens/S-0001/images`, key)).json.items as typeof items;
      if (items.every((i) => i.status !== 'pending')) break;
      if (Date.now() > deadline) throw new Error(`still pending: ${JSON.stringify(items)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const peak = memory(pid, 'VmHWM');
    const growthMb = (peak - before) / 1e6;
    const expected = hashes.map((h) => h.digest('hex'));
    for (const [i, link] of links.entries()) {
      expect(items.find((item) => item.imageId === link.imageId)).toMatchObject({
        status: 'rejected',
        reason: 'too-large',
        uploadBytes: UPLOAD_BYTES,
        uploadSha256: expected[i],
      });
    }
    const left: string[] = [];
    const uploads = BlobServiceClient.fromConnectionString(host.storageConnectionString).getContainerClient(
      'specimen-uploads',
    );
    for await (const b of uploads.listBlobsFlat({
      prefix: `lab-big/${orderId}/`,
      includeSnapshots: true,
      includeUncommitedBlobs: true,
    }))
      left.push(b.name);
    expect(left).toEqual([]);
    recordFigures('uploads', {
      uploads: links.length,
      bytesEach: UPLOAD_BYTES,
      uploadMs: uploadedMs,
      processedMs: Date.now() - t0,
      rssBeforeMb: Math.round(before / 1e6),
      peakRssMb: Math.round(peak / 1e6),
      peakGrowthMb: Math.round(growthMb),
    });
    expect(growthMb).toBeLessThan(200);
  });
});
