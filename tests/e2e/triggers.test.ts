import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { describe, expect, it } from 'vitest';
import { type RunningHost, startHost } from '../support/local-host.js';

const EXTRA = { LABVAULT_LOCAL_EXTRA_ENTRY: 'tests/support/durable-app.ts' };
const lines = (host: RunningHost): string[] => {
  const file = join(host.dataDir, 'activity-log.txt');
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
};

async function until(check: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
  return Date.now() - started;
}

describe('blob trigger and timers of the local host', () => {
  it('fires each new or changed blob once, within 2 s, with bound names, also across a restart', async () => {
    let host = await startHost({ env: EXTRA });
    try {
      const container = BlobServiceClient.fromConnectionString(host.storageConnectionString).getContainerClient(
        'test-uploads',
      );
      await container.createIfNotExists();
      const blob = container.getBlockBlobClient('lab-a/photo-1.jpg');
      await blob.upload(Buffer.alloc(1234, 1), 1234);
      const latency = await until(() => lines(host).includes('blob lab-a photo-1.jpg 1234'), 2000);
      expect(latency).toBeLessThan(2000);
      await new Promise((r) => setTimeout(r, 800));
      expect(lines(host).filter((l) => l.startsWith('blob lab-a photo-1.jpg'))).toHaveLength(1);

      await blob.upload(Buffer.alloc(99, 2), 99);
      await until(() => lines(host).includes('blob lab-a photo-1.jpg 99'), 2000);
      // The receipt is written once the function has returned; a kill before that would rightly run
      // the blob again after the restart (at least once, as on Azure). This restart comes after it.
      await new Promise((r) => setTimeout(r, 800));

      const dataDir = host.dataDir;
      await host.kill('SIGKILL');
      host = await startHost({ dataDir, env: EXTRA });
      await new Promise((r) => setTimeout(r, 1500));
      expect(lines(host).filter((l) => l.startsWith('blob lab-a photo-1.jpg'))).toEqual([
        'blob lab-a photo-1.jpg 1234',
        'blob lab-a photo-1.jpg 99',
      ]);
    } finally {
      await host.kill();
    }
  });

  it('retries a failing blob five times, then posts it to the poison queue with the reason', async () => {
    const host = await startHost({ env: EXTRA });
    try {
      const container = BlobServiceClient.fromConnectionString(host.storageConnectionString).getContainerClient(
        'test-uploads',
      );
      await container.createIfNotExists();
      await container.getBlockBlobClient('lab-b/always-fail.bin').upload(Buffer.from('x'), 1);
      const poison = QueueServiceClient.fromConnectionString(host.storageConnectionString).getQueueClient(
        'webjobs-blobtrigger-poison',
      );
      let message: Record<string, string> | undefined;
      await until(() => lines(host).filter((l) => l.startsWith('blob lab-b always-fail.bin')).length >= 5, 20_000);
      for (let i = 0; i < 40 && !message; i++) {
        const peeked = await poison.peekMessages({ numberOfMessages: 1 }).catch(() => undefined);
        const text = peeked?.peekedMessageItems[0]?.messageText;
        if (text) message = JSON.parse(Buffer.from(text, 'base64').toString()) as Record<string, string>;
        else await new Promise((r) => setTimeout(r, 250));
      }
      expect(message).toMatchObject({
        FunctionId: 'Host.Functions.testBlobEcho',
        ContainerName: 'test-uploads',
        BlobName: 'lab-b/always-fail.bin',
        Reason: 'Error: this blob always fails',
      });
      await new Promise((r) => setTimeout(r, 1500));
      expect(lines(host).filter((l) => l.startsWith('blob lab-b always-fail.bin'))).toHaveLength(5);
    } finally {
      await host.kill();
    }
  });

  it('fires a timer on schedule, and after a hard restart fires a missed occurrence once, past due', async () => {
    let host = await startHost({ env: EXTRA });
    const dataDir = host.dataDir;
    try {
      await until(() => lines(host).filter((l) => l.startsWith('tick false')).length >= 2, 10_000);
      await host.kill('SIGKILL');
      const before = lines(host).filter((l) => l.startsWith('tick')).length;
      await new Promise((r) => setTimeout(r, 7000)); // two occurrences fall into the downtime
      host = await startHost({ dataDir, env: EXTRA });
      await until(() => lines(host).filter((l) => l.startsWith('tick')).length >= before + 2, 10_000);
      const ticks = lines(host).filter((l) => l.startsWith('tick'));
      expect(ticks.filter((l) => l.startsWith('tick true'))).toHaveLength(1);
      const occurrences = ticks.map((l) => l.split(' ')[2]).filter(Boolean);
      expect(new Set(occurrences).size).toBe(occurrences.length);
    } finally {
      await host.kill();
    }
  });
});
