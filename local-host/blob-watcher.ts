import { createHash, randomUUID } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import type { BlobServiceClient } from '@azure/storage-blob';
import type { QueueServiceClient } from '@azure/storage-queue';
import { errorFields, type Logger } from '../lib/observability/logger.js';
import { isConflict, isNotFound, isPreconditionFailed } from '../lib/storage/errors.js';
import { type Invoker, invokeDirectly, type Registration } from './core-module.js';
import type { FunctionsLibrary } from './http-server.js';

export const POISON_QUEUE = 'webjobs-blobtrigger-poison';
/** Where events go that failed every delivery (Event Grid dead-letters them; the local host queues them). */
export const EVENT_DEAD_LETTER_QUEUE = 'eventgrid-deadletter';
const MAX_BLOB_ATTEMPTS = 5;
/** The storage account's system topic as the local host names it in the events it makes. */
const LOCAL_TOPIC =
  '/subscriptions/local/resourceGroups/local/providers/Microsoft.Storage/storageAccounts/devstoreaccount1';

/**
 * An Event Grid subscription of an `app.eventGrid` function to the storage account's BlobCreated
 * events, as the Bicep templates declare it (`Microsoft.EventGrid/systemTopics/eventSubscriptions`).
 */
export interface BlobEventSubscription {
  functionName: string;
  container: string;
}

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
  return {
    container,
    prefix: firstParam < 0 ? rest : rest.slice(0, firstParam),
    names,
    pattern: new RegExp(source + '$'),
  };
}

interface Watch {
  registration: Registration;
  path: BlobPath;
  triggerName: string;
  /** `blob`: a blob trigger (the content is read and handed over); `event`: an Event Grid BlobCreated event (nothing is read). */
  kind: 'blob' | 'event';
}

type ReceiptRow = {
  partitionKey: string;
  rowKey: string;
  blob: string;
  etag: string;
  status: 'processing' | 'done' | 'poison';
  attempts: number;
  lastAttemptAt: string;
};

/** A new blob (or a new version of one) as a listing found it. */
interface ListedBlob {
  watch: Watch;
  name: string;
  etag: string;
  match: RegExpExecArray;
  /** Function, blob and ETag: what runs once. */
  key: string;
  length: number;
  contentType: string;
}

export interface BlobWatcherOptions {
  registrations: Iterable<Registration>;
  library: FunctionsLibrary;
  /** How functions are called (the host's, with the app's hooks); directly by default. */
  invoke?: Invoker;
  logger: Logger;
  blobService: BlobServiceClient;
  queueService: QueueServiceClient;
  /** Receipts, as the real host keeps them (per function, blob and ETag). */
  receipts: TableClient;
  /** Event Grid subscriptions to deliver BlobCreated events for (Bicep declares them on Azure). */
  subscriptions?: readonly BlobEventSubscription[];
  /** The pause between scans while blobs arrive or are processed. */
  pollMs?: number;
  /**
   * The longest pause when nothing happens: each empty scan doubles the pause up to this (Azure's
   * queue-based triggers back off the same way); a new blob or `wake()` makes it short again.
   */
  idlePollMs?: number;
  /** Blobs processed at the same time (image decoding is memory-hungry). */
  maxConcurrent?: number;
}

/**
 * Blob events of the local host: polls the containers that functions watch, and fires each new or
 * changed blob once (a receipt per function, blob and ETag). A blob trigger gets the blob's content;
 * an Event Grid function subscribed to a container gets a `Microsoft.Storage.BlobCreated` event with
 * the blob's URL and length, as Event Grid delivers it on Azure, and reads what it needs itself. A
 * failing blob is retried up to five times, then posted with the reason to
 * `webjobs-blobtrigger-poison` (blob triggers) or `eventgrid-deadletter` (events).
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
  #pauseMs = 0;
  #scanning = false;
  /** Blobs the last listing found while every slot was busy, in its order: started as slots free. */
  readonly #waiting: ListedBlob[] = [];
  /** Listings were skipped while every slot was busy: a freed slot with nothing waiting lists at once. */
  #backlog = false;

  constructor(options: BlobWatcherOptions) {
    this.#options = options;
    const registrations = [...options.registrations];
    for (const registration of registrations) {
      const entry = Object.entries(registration.bindings).find(([, b]) => b.type === 'blobTrigger');
      if (entry)
        this.#watches.push({
          registration,
          path: compileBlobPath(String(entry[1].path)),
          triggerName: entry[0],
          kind: 'blob',
        });
    }
    for (const subscription of options.subscriptions ?? []) {
      const registration = registrations.find((r) => r.name === subscription.functionName);
      const entry =
        registration && Object.entries(registration.bindings).find(([, b]) => b.type === 'eventGridTrigger');
      if (!registration || !entry)
        throw new Error(`Event Grid subscription for "${subscription.functionName}": no such eventGrid function`);
      this.#watches.push({
        registration,
        path: compileBlobPath(`${subscription.container}/{name}`),
        triggerName: entry[0],
        kind: 'event',
      });
    }
  }

  get watching(): number {
    return this.#watches.length;
  }

  async start(): Promise<void> {
    if (this.#watches.length === 0) return;
    await this.#options.receipts.createTable();
    await this.#options.queueService.getQueueClient(POISON_QUEUE).createIfNotExists();
    await this.#options.queueService.getQueueClient(EVENT_DEAD_LETTER_QUEUE).createIfNotExists();
    for (const w of this.#watches)
      await this.#options.blobService.getContainerClient(w.path.container).createIfNotExists();
    this.#pauseMs = this.#fastPollMs;
    this.#loop();
  }

  get #fastPollMs(): number {
    return this.#options.pollMs ?? 100;
  }

  get #maxConcurrent(): number {
    return this.#options.maxConcurrent ?? 4;
  }

  #loop(): void {
    if (this.#stopped) return;
    this.#timer = undefined;
    if (this.#inFlight.size >= this.#maxConcurrent) {
      // Every slot busy: a listing now could start nothing (and listing a container of waiting
      // uploads costs host and storage CPU the blobs being processed need). The first slot to free
      // takes a waiting blob or lists at once; the timer is only a fallback.
      this.#backlog = true;
      this.#timer = setTimeout(() => this.#loop(), this.#options.idlePollMs ?? 1000);
      return;
    }
    this.#scanning = true;
    this.#tick = this.scan()
      .then((started) => {
        // New blobs arrived: scan again soon; none: back off, also while blobs are still running
        // (listing a container of uploads in progress every 100 ms cost host and storage CPU the
        // processing needs). An HTTP request brings the short pause back (`wake`).
        this.#pauseMs = started > 0 ? this.#fastPollMs : Math.min(this.#pauseMs * 2, this.#options.idlePollMs ?? 1000);
      })
      .catch((error: unknown) => this.#options.logger.log('warn', 'blobtrigger.scan', errorFields(error)))
      .finally(() => {
        this.#scanning = false;
        if (!this.#stopped) this.#timer = setTimeout(() => this.#loop(), this.#pauseMs);
      });
  }

  /** Scans as soon as the current scan (if any) is done, instead of after the pause. */
  #scanNow(): void {
    if (this.#stopped || !this.#timer || this.#scanning) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#loop(), 0);
  }

  /**
   * Something may have been uploaded (the local host calls this on each HTTP request it serves: an
   * upload follows a request for its URL): scan within the short pause instead of the idle one.
   */
  wake(): void {
    if (this.#stopped || this.#pauseMs <= this.#fastPollMs) return;
    this.#pauseMs = this.#fastPollMs;
    if (this.#timer && !this.#scanning) {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.#loop(), this.#fastPollMs);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#tick;
    await Promise.all([...this.#inFlight]);
  }

  /**
   * One pass over every watched container: every new blob it lists starts at once if a slot is free
   * and waits for one otherwise (each blob once at a time, at most `maxConcurrent` together), so a
   * slow blob never delays the next one. Resolves to the number of blobs it started.
   */
  async scan(): Promise<number> {
    this.#backlog = false;
    const found: ListedBlob[] = [];
    for (const watch of this.#watches) {
      const container = this.#options.blobService.getContainerClient(watch.path.container);
      for await (const blob of container.listBlobsFlat({ prefix: watch.path.prefix })) {
        const match = watch.path.pattern.exec(blob.name);
        if (!match) continue;
        const etag = blob.properties.etag ?? '';
        const key = `${watch.registration.name}|${watch.path.container}/${blob.name}|${etag}`;
        if (this.#done.has(key) || this.#running.has(key)) continue;
        found.push({
          watch,
          name: blob.name,
          etag,
          match,
          key,
          length: blob.properties.contentLength ?? 0,
          contentType: blob.properties.contentType ?? 'application/octet-stream',
        });
      }
    }
    // This listing is newer than whatever an earlier one left waiting.
    this.#waiting.splice(0, this.#waiting.length, ...found);
    return this.#startWaiting();
  }

  /** Starts waiting blobs while slots are free; returns how many it started. */
  #startWaiting(): number {
    let started = 0;
    while (this.#inFlight.size < this.#maxConcurrent) {
      const next = this.#waiting.shift();
      if (!next) break;
      if (this.#done.has(next.key) || this.#running.has(next.key)) continue;
      this.#start(next);
      started++;
    }
    return started;
  }

  #start(blob: ListedBlob): void {
    this.#running.add(blob.key);
    const work: Promise<void> = this.#process(blob)
      .catch((error: unknown) => this.#options.logger.log('warn', 'blobtrigger.process', errorFields(error)))
      .finally(() => {
        this.#running.delete(blob.key);
        this.#inFlight.delete(work);
        if (this.#stopped) return;
        // A freed slot takes the next blob the last listing found, without listing again (a listing
        // of many waiting uploads costs the host and storage more CPU than starting one of them);
        // when none is left and listings were skipped meanwhile, it lists at once.
        if (this.#waiting.length > 0) this.#startWaiting();
        else if (this.#backlog) this.#scanNow();
      });
    this.#inFlight.add(work);
  }

  async #process(listed: ListedBlob): Promise<void> {
    const { watch, name: blobName, etag, match, key } = listed;
    const receipts = this.#options.receipts;
    const partitionKey = watch.registration.name;
    const rowKey = createHash('sha256').update(`${watch.path.container}/${blobName}|${etag}`).digest('hex');
    const claimAt = new Date().toISOString();
    const claimOf = (attempts: number): ReceiptRow => ({
      partitionKey,
      rowKey,
      blob: `${watch.path.container}/${blobName}`,
      etag,
      status: 'processing',
      attempts,
      lastAttemptAt: claimAt,
    });
    // The claim keeps two hosts off one blob: an insert for a blob seen for the first time (the usual
    // case: one request); where a receipt exists, an update under its ETag, unless it says done.
    let claim = claimOf(1);
    try {
      await receipts.createEntity(claim);
    } catch (error) {
      if (!isConflict(error)) throw error;
      let receipt: ReceiptRow & { etag: string };
      try {
        receipt = await receipts.getEntity<ReceiptRow>(partitionKey, rowKey);
      } catch (readError) {
        if (isNotFound(readError)) return; // removed in between: the next scan claims it afresh
        throw readError;
      }
      if (receipt.status !== 'processing') {
        this.#done.add(key);
        return;
      }
      // Back off between attempts of a failing blob.
      if (Date.now() - Date.parse(receipt.lastAttemptAt) < 200 * 2 ** Math.min(receipt.attempts, 5)) return;
      claim = claimOf(receipt.attempts + 1);
      try {
        await receipts.updateEntity(claim, 'Replace', { etag: receipt.etag });
      } catch (updateError) {
        if (isConflict(updateError) || isPreconditionFailed(updateError) || isNotFound(updateError)) return;
        throw updateError;
      }
    }
    const attempts = claim.attempts;
    const blobClient = this.#options.blobService.getContainerClient(watch.path.container).getBlobClient(blobName);
    let input: unknown;
    let triggerMetadata: Record<string, unknown>;
    if (watch.kind === 'event') {
      // What Event Grid hands a subscriber: where the blob is and how long, never its bytes.
      const event = {
        id: randomUUID(),
        topic: LOCAL_TOPIC,
        subject: `/blobServices/default/containers/${watch.path.container}/blobs/${blobName}`,
        eventType: 'Microsoft.Storage.BlobCreated',
        eventTime: new Date().toISOString(),
        dataVersion: '',
        metadataVersion: '1',
        data: {
          api: 'PutBlob',
          contentType: listed.contentType,
          contentLength: listed.length,
          blobType: 'BlockBlob',
          url: blobClient.url,
          eTag: etag,
        },
      };
      input = event;
      triggerMetadata = { ...event };
    } else {
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
      const bound = Object.fromEntries(watch.path.names.map((n, i) => [n, match[i + 1] ?? '']));
      input = content;
      triggerMetadata = {
        ...bound,
        blobTrigger: `${watch.path.container}/${blobName}`,
        uri: blobClient.url,
        properties: { eTag: etag, length: content.length },
      };
    }
    const { InvocationContext } = this.#options.library;
    const context = new InvocationContext({
      invocationId: randomUUID(),
      functionName: watch.registration.name,
      triggerMetadata,
      options: {
        trigger: {
          type: watch.kind === 'event' ? 'eventGridTrigger' : 'blobTrigger',
          name: watch.triggerName,
        } as never,
        extraInputs: [],
        extraOutputs: [],
      },
      logHandler: () => undefined,
    });
    try {
      await (this.#options.invoke ?? invokeDirectly)(watch.registration, [input], context);
      await receipts.upsertEntity({ ...claim, status: 'done' }, 'Replace');
      this.#done.add(key);
    } catch (error) {
      this.#options.logger.log('warn', 'blobtrigger.failed', {
        function: watch.registration.name,
        attempt: attempts,
        ...errorFields(error),
      });
      if (attempts >= MAX_BLOB_ATTEMPTS) {
        const reason = error instanceof Error ? `${error.name}: ${error.message}`.slice(0, 500) : 'failed';
        const message = {
          FunctionId: `Host.Functions.${watch.registration.name}`,
          BlobType: 'BlockBlob',
          ContainerName: watch.path.container,
          BlobName: blobName,
          ETag: etag,
          Reason: reason,
        };
        const queue = watch.kind === 'event' ? EVENT_DEAD_LETTER_QUEUE : POISON_QUEUE;
        await this.#options.queueService
          .getQueueClient(queue)
          .sendMessage(Buffer.from(JSON.stringify(message)).toString('base64'), { messageTimeToLive: -1 });
        await receipts.upsertEntity({ ...claim, status: 'poison' }, 'Replace');
        this.#done.add(key);
      }
    }
  }
}
