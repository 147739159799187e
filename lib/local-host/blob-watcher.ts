import { createHash, randomUUID } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import type { BlobServiceClient } from '@azure/storage-blob';
import type { QueueServiceClient } from '@azure/storage-queue';
import { errorFields, type Logger } from '../observability/logger.js';
import { isConflict, isNotFound, isPreconditionFailed } from '../storage/errors.js';
import type { Registration } from './core-module.js';
import type { FunctionsLibrary } from './http-server.js';

export const POISON_QUEUE = 'webjobs-blobtrigger-poison';
export const MAX_BLOB_ATTEMPTS = 5;

export interface BlobPath {
  container: string;
  prefix: string;
  names: string[];
  pattern: RegExp;
}

/** `container/{a}/{b}.png` → a matcher that binds a and b; the last name may span folders. */
export function compileBlobPath(path: string): BlobPath {
  const slash = path.indexOf('/');
  const container = slash < 0 ? path : path.slice(0, slash);
  const rest = slash < 0 ? '' : path.slice(slash + 1);
  const names: string[] = [];
  const tokens = rest.split(/(\{[A-Za-z_][A-Za-z0-9_]*\})/).filter((t) => t !== '');
  const lastParam = tokens.map((t) => t.startsWith('{')).lastIndexOf(true);
  let source = '^';
  tokens.forEach((token, i) => {
    if (token.startsWith('{')) {
      names.push(token.slice(1, -1));
      source += i === lastParam && i === tokens.length - 1 ? '(.+)' : '([^/]+?)';
    } else {
      source += token.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    }
  });
  const firstParam = rest.indexOf('{');
  return { container, prefix: firstParam < 0 ? rest : rest.slice(0, firstParam), names, pattern: new RegExp(source + '$') };
}

interface Watch {
  registration: Registration;
  path: BlobPath;
  triggerName: string;
}

type ReceiptRow = { partitionKey: string; rowKey: string; blob: string; etag: string; status: 'processing' | 'done' | 'poison'; attempts: number; lastAttemptAt: string };

export interface BlobWatcherOptions {
  registrations: Iterable<Registration>;
  library: FunctionsLibrary;
  logger: Logger;
  blobService: BlobServiceClient;
  queueService: QueueServiceClient;
  /** Receipts, as the real host keeps them (per function, blob and ETag). */
  receipts: TableClient;
  pollMs?: number;
  /** Blobs processed at the same time (image decoding is memory-hungry). */
  maxConcurrent?: number;
}

/**
 * The blob trigger of the local host: polls the containers the functions watch, fires each new or
 * changed blob once (a receipt per function, blob and ETag), retries a failing blob up to five
 * times and then posts it to the `webjobs-blobtrigger-poison` queue with the reason. On Azure the
 * same functions are fed by Event Grid.
 */
export class BlobWatcher {
  readonly #watches: Watch[] = [];
  readonly #options: BlobWatcherOptions;
  readonly #done = new Set<string>();
  readonly #running = new Set<string>();
  readonly #inFlight = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #tick: Promise<void> = Promise.resolve();

  constructor(options: BlobWatcherOptions) {
    this.#options = options;
    for (const registration of options.registrations) {
      const entry = Object.entries(registration.bindings).find(([, b]) => b.type === 'blobTrigger');
      if (entry) this.#watches.push({ registration, path: compileBlobPath(String(entry[1].path)), triggerName: entry[0] });
    }
  }

  get watching(): number {
    return this.#watches.length;
  }

  async start(): Promise<void> {
    if (this.#watches.length === 0) return;
    await this.#options.receipts.createTable();
    await this.#options.queueService.getQueueClient(POISON_QUEUE).createIfNotExists();
    for (const w of this.#watches) await this.#options.blobService.getContainerClient(w.path.container).createIfNotExists();
    const loop = (): void => {
      if (this.#stopped) return;
      this.#tick = this.scan()
        .catch((error: unknown) => this.#options.logger.log('warn', 'blobtrigger.scan', errorFields(error)))
        .finally(() => {
          if (!this.#stopped) this.#timer = setTimeout(loop, this.#options.pollMs ?? 100);
        });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#tick;
    await Promise.all([...this.#inFlight]);
  }

  /**
   * One pass over every watched container. New blobs start at once and run in the background (each
   * blob once at a time, at most `maxConcurrent` together), so a slow blob never delays the next one.
   */
  async scan(): Promise<void> {
    const limit = this.#options.maxConcurrent ?? 4;
    for (const watch of this.#watches) {
      const container = this.#options.blobService.getContainerClient(watch.path.container);
      for await (const blob of container.listBlobsFlat({ prefix: watch.path.prefix })) {
        if (this.#inFlight.size >= limit) return; // the rest waits for the next pass
        const match = watch.path.pattern.exec(blob.name);
        const etag = blob.properties.etag ?? '';
        if (!match) continue;
        const key = `${watch.registration.name}|${watch.path.container}/${blob.name}|${etag}`;
        if (this.#done.has(key) || this.#running.has(key)) continue;
        this.#running.add(key);
        const work: Promise<void> = this.#process(watch, blob.name, etag, match, key)
          .catch((error: unknown) => this.#options.logger.log('warn', 'blobtrigger.process', errorFields(error)))
          .finally(() => {
            this.#running.delete(key);
            this.#inFlight.delete(work);
          });
        this.#inFlight.add(work);
      }
    }
  }

  async #process(watch: Watch, blobName: string, etag: string, match: RegExpExecArray, key: string): Promise<void> {
    const receipts = this.#options.receipts;
    const partitionKey = watch.registration.name;
    const rowKey = createHash('sha256').update(`${watch.path.container}/${blobName}|${etag}`).digest('hex');
    let receipt: (ReceiptRow & { etag: string }) | undefined;
    try {
      receipt = await receipts.getEntity<ReceiptRow>(partitionKey, rowKey);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    if (receipt && receipt.status !== 'processing') {
      this.#done.add(key);
      return;
    }
    const attempts = (receipt?.attempts ?? 0) + 1;
    // Back off between attempts of a failing blob.
    if (receipt && Date.now() - Date.parse(receipt.lastAttemptAt) < 200 * 2 ** Math.min(receipt.attempts, 5)) return;
    const claim: ReceiptRow = { partitionKey, rowKey, blob: `${watch.path.container}/${blobName}`, etag, status: 'processing', attempts, lastAttemptAt: new Date().toISOString() };
    try {
      // The claim (an insert, or an update under the receipt's ETag) keeps two hosts off one blob.
      if (receipt) await receipts.updateEntity(claim, 'Replace', { etag: receipt.etag });
      else await receipts.createEntity(claim);
    } catch (error) {
      if (isConflict(error) || isPreconditionFailed(error)) return;
      throw error;
    }
    const blobClient = this.#options.blobService.getContainerClient(watch.path.container).getBlobClient(blobName);
    let content: Buffer;
    try {
      content = await blobClient.downloadToBuffer(undefined, undefined, { conditions: { ifMatch: etag } });
    } catch (error) {
      // Gone or replaced since the listing: the next scan sees the new version, if any.
      if (isNotFound(error) || isPreconditionFailed(error)) {
        await receipts.deleteEntity(partitionKey, rowKey).catch(() => undefined);
        return;
      }
      throw error;
    }
    const { InvocationContext } = this.#options.library;
    const bound = Object.fromEntries(watch.path.names.map((n, i) => [n, match[i + 1] ?? '']));
    const context = new InvocationContext({
      invocationId: randomUUID(),
      functionName: watch.registration.name,
      triggerMetadata: { ...bound, blobTrigger: `${watch.path.container}/${blobName}`, uri: blobClient.url, properties: { eTag: etag, length: content.length } },
      options: { trigger: { type: 'blobTrigger', name: watch.triggerName } as never, extraInputs: [], extraOutputs: [] },
      logHandler: () => undefined,
    });
    try {
      await watch.registration.handler(content, context);
      await receipts.upsertEntity({ ...claim, status: 'done' }, 'Replace');
      this.#done.add(key);
    } catch (error) {
      this.#options.logger.log('warn', 'blobtrigger.failed', { function: watch.registration.name, attempt: attempts, ...errorFields(error) });
      if (attempts >= MAX_BLOB_ATTEMPTS) {
        const reason = error instanceof Error ? `${error.name}: ${error.message}`.slice(0, 500) : 'failed';
        const message = { FunctionId: `Host.Functions.${watch.registration.name}`, BlobType: 'BlockBlob', ContainerName: watch.path.container, BlobName: blobName, ETag: etag, Reason: reason };
        await this.#options.queueService.getQueueClient(POISON_QUEUE).sendMessage(Buffer.from(JSON.stringify(message)).toString('base64'), { messageTimeToLive: -1 });
        await receipts.upsertEntity({ ...claim, status: 'poison' }, 'Replace');
        this.#done.add(key);
      }
    }
  }
}
