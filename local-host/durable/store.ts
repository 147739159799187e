import { odata, type TableClient, type TableServiceClient, type TransactionAction } from '@azure/data-tables';
import type { QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { isNotFound } from '../../lib/storage/errors.js';
import type { HistoryEvent, RuntimeStatus } from './history.js';

/** One instance's row: what the status API shows and what the next step needs. */
export interface InstanceState {
  instanceId: string;
  name: string;
  runtimeStatus: RuntimeStatus;
  createdTime: string;
  lastUpdatedTime: string;
  input: string | null;
  output: string | null;
  customStatus: string | null;
  executionId: string;
  /** Events of the current execution stored as rows h~{executionId}~{seq}. */
  historyCount: number;
  parentInstanceId?: string;
  parentExecutionId?: string;
  parentTaskId?: number;
  /** Events that arrived while suspended (JSON array), replayed on resume. */
  suspendedBuffer?: string;
  etag?: string;
}

export interface ControlMessage {
  id: string;
  instanceId: string;
  executionId?: string;
  kind: 'event' | 'terminate' | 'suspend' | 'resume';
  event?: HistoryEvent;
  /** Several events at once (completions of a pack of activities). */
  events?: HistoryEvent[];
  reason?: string;
}

export interface WorkItem {
  taskId: number;
  name: string;
  input: string | undefined;
}

/** Activities one step scheduled, in one queue message (a fan-out of 1,000 is 20 messages). */
export interface WorkPack {
  id: string;
  instanceId: string;
  executionId: string;
  items: WorkItem[];
}

/** A queue message this host holds (received, or sent hidden and handed over locally). */
export interface HeldMessage {
  messageId: string;
  popReceipt: string;
  messageText: string;
}

export interface TaskResult {
  ok: boolean;
  result?: string;
  reason?: string;
  details?: string;
}

const STATE_ROW = 'state';
const historyRow = (executionId: string, seq: number) => `h~${executionId}~${String(seq).padStart(8, '0')}`;
const resultRow = (executionId: string, taskId: number) => `r~${executionId}~${taskId}`;
// Table string properties hold 32K UTF-16 units; longer events are split over several columns.
const CHUNK = 30_000;

/**
 * The task hub in Azure Storage, as the Durable extension's Azure Storage provider keeps one: a
 * history table (one partition per instance: its state row, its history rows and the results of
 * its activities) and two queues (control messages for orchestrations, work items for activities).
 */
export class TaskHubStore {
  readonly history: TableClient;
  readonly control: QueueClient;
  readonly workItems: QueueClient;
  readonly #tableService: TableServiceClient;

  constructor(options: {
    taskHub: string;
    table: (name: string) => TableClient;
    tableService: TableServiceClient;
    queueService: QueueServiceClient;
  }) {
    const hub = options.taskHub.toLowerCase();
    this.history = options.table(`${options.taskHub}History`);
    this.control = options.queueService.getQueueClient(`${hub}-control`);
    this.workItems = options.queueService.getQueueClient(`${hub}-workitems`);
    this.#tableService = options.tableService;
  }

  async ensure(): Promise<void> {
    await this.#tableService.createTable(this.history.tableName);
    await this.control.createIfNotExists();
    await this.workItems.createIfNotExists();
  }

  async readState(instanceId: string): Promise<InstanceState | undefined> {
    try {
      const row = await this.history.getEntity<Record<string, unknown>>(instanceId, STATE_ROW);
      return fromRow(row);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async readHistory(state: InstanceState): Promise<HistoryEvent[]> {
    const from = historyRow(state.executionId, 0);
    const to = historyRow(state.executionId, state.historyCount);
    const filter = odata`PartitionKey eq ${state.instanceId} and RowKey ge ${from} and RowKey lt ${to}`;
    const events: HistoryEvent[] = [];
    for await (const row of this.history.listEntities<Record<string, unknown>>({ queryOptions: { filter } }))
      events.push(decodeEvent(row));
    return events;
  }

  /**
   * Appends events and writes the state under its ETag. History rows go first (upserts, so a step
   * retried after a crash rewrites the same rows); the state row, which says how many rows count,
   * commits the step. Returns the new ETag, or undefined when another writer got there first.
   */
  async commit(state: InstanceState, startSeq: number, events: readonly HistoryEvent[]): Promise<string | undefined> {
    const rows = events.map((event, i): TransactionAction => [
      'upsert',
      { partitionKey: state.instanceId, rowKey: historyRow(state.executionId, startSeq + i), ...encodeEvent(event) },
      'Replace',
    ]);
    const stateEntity = toRow(state);
    const stateAction: TransactionAction = state.etag
      ? ['update', stateEntity, 'Replace', { etag: state.etag }]
      : ['create', stateEntity];
    try {
      // Full batches of history first; the last batch carries the state row, so the common case is one transaction.
      let i = 0;
      while (rows.length - i > 99) {
        await this.history.submitTransaction(rows.slice(i, i + 100));
        i += 100;
      }
      const response = await this.history.submitTransaction([...rows.slice(i), stateAction]);
      return (
        response.subResponses[response.subResponses.length - 1]?.etag ?? (await this.readState(state.instanceId))?.etag
      );
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode;
      if (status === 412 || status === 409) return undefined;
      throw error;
    }
  }

  async writeResult(instanceId: string, executionId: string, taskId: number, result: TaskResult): Promise<void> {
    await this.history.upsertEntity(
      {
        partitionKey: instanceId,
        rowKey: resultRow(executionId, taskId),
        ...encodeText('payload', JSON.stringify(result)),
      },
      'Replace',
    );
  }

  async readResult(instanceId: string, executionId: string, taskId: number): Promise<TaskResult | undefined> {
    try {
      const row = await this.history.getEntity<Record<string, unknown>>(instanceId, resultRow(executionId, taskId));
      return JSON.parse(decodeText('payload', row)) as TaskResult;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async listStates(filter: {
    runtimeStatus?: string[];
    createdTimeFrom?: string;
    createdTimeTo?: string;
  }): Promise<InstanceState[]> {
    let query = odata`RowKey eq ${STATE_ROW}`;
    if (filter.createdTimeFrom) query += ' and ' + odata`createdTime ge ${filter.createdTimeFrom}`;
    if (filter.createdTimeTo) query += ' and ' + odata`createdTime le ${filter.createdTimeTo}`;
    const states: InstanceState[] = [];
    for await (const row of this.history.listEntities<Record<string, unknown>>({ queryOptions: { filter: query } })) {
      const state = fromRow(row);
      if (!filter.runtimeStatus || filter.runtimeStatus.includes(state.runtimeStatus)) states.push(state);
    }
    return states;
  }

  /** Removes every row of an instance (state, history of all executions, results). */
  async purge(instanceId: string): Promise<boolean> {
    const filter = odata`PartitionKey eq ${instanceId}`;
    const keys: string[] = [];
    for await (const row of this.history.listEntities({ queryOptions: { filter, select: ['RowKey'] } }))
      keys.push(row.rowKey as string);
    for (let i = 0; i < keys.length; i += 100) {
      await this.history.submitTransaction(
        keys.slice(i, i + 100).map((rowKey): TransactionAction => ['delete', { partitionKey: instanceId, rowKey }]),
      );
    }
    return keys.includes(STATE_ROW);
  }

  /** Sends a message hidden for `visibilityTimeoutSeconds`; the returned handle lets the sender process it. */
  async sendControl(message: ControlMessage, visibilityTimeoutSeconds = 0): Promise<HeldMessage> {
    const text = await this.#messageText(message);
    return held(
      await this.control.sendMessage(text, {
        ...(visibilityTimeoutSeconds > 0 ? { visibilityTimeout: visibilityTimeoutSeconds } : {}),
        messageTimeToLive: -1,
      }),
      text,
    );
  }

  async sendWorkPack(pack: WorkPack, visibilityTimeoutSeconds: number): Promise<HeldMessage> {
    const text = await this.#messageText(pack);
    return held(
      await this.workItems.sendMessage(text, { visibilityTimeout: visibilityTimeoutSeconds, messageTimeToLive: -1 }),
      text,
    );
  }

  /** A message's content, read from the history table when it was too large for the queue. */
  async readMessage<T extends { instanceId: string }>(messageText: string): Promise<T> {
    const message = decodeMessage<T | StoredMessage>(messageText);
    if (!('storedAs' in message)) return message;
    const row = await this.history.getEntity<Record<string, unknown>>(message.instanceId, message.storedAs);
    return JSON.parse(decodeText('payload', row)) as T;
  }

  /**
   * A queue message holds 64 KiB; larger ones (an activity input listing many files, say) are kept
   * in the instance's partition and the message carries their row key, as the Durable extension's
   * Azure Storage provider keeps large messages in blobs. The row goes with the instance's purge.
   */
  async #messageText(message: { id: string; instanceId: string }): Promise<string> {
    const json = JSON.stringify(message);
    if (Buffer.byteLength(json) <= LARGE_MESSAGE_BYTES) return Buffer.from(json).toString('base64');
    const storedAs = `m~${message.id}`;
    await this.history.upsertEntity(
      { partitionKey: message.instanceId, rowKey: storedAs, ...encodeText('payload', json) },
      'Replace',
    );
    const reference: StoredMessage = { id: message.id, instanceId: message.instanceId, storedAs };
    return encodeMessage(reference);
  }
}

interface StoredMessage {
  id: string;
  instanceId: string;
  storedAs: string;
}

/** JSON bytes above which a message is stored in the table (base64 makes 45 KB about 60 KiB). */
const LARGE_MESSAGE_BYTES = 45_000;

function held(response: { messageId: string; popReceipt: string }, messageText: string): HeldMessage {
  return { messageId: response.messageId, popReceipt: response.popReceipt, messageText };
}

function encodeMessage(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64');
}

export function decodeMessage<T>(text: string): T {
  return JSON.parse(Buffer.from(text, 'base64').toString('utf8')) as T;
}

function encodeText(prefix: string, text: string): Record<string, string | number> {
  const columns: Record<string, string | number> = { [`${prefix}Parts`]: Math.max(1, Math.ceil(text.length / CHUNK)) };
  for (let i = 0, part = 0; i < text.length || part === 0; i += CHUNK, part++)
    columns[`${prefix}${part}`] = text.slice(i, i + CHUNK);
  return columns;
}

function decodeText(prefix: string, row: Record<string, unknown>): string {
  const parts = Number(row[`${prefix}Parts`] ?? 1);
  let text = '';
  for (let i = 0; i < parts; i++) text += String(row[`${prefix}${i}`] ?? '');
  return text;
}

const encodeEvent = (event: HistoryEvent) => encodeText('e', JSON.stringify(event));
const decodeEvent = (row: Record<string, unknown>) => JSON.parse(decodeText('e', row)) as HistoryEvent;

function toRow(state: InstanceState): Record<string, unknown> & { partitionKey: string; rowKey: string } {
  const { etag: _etag, instanceId, input, output, customStatus, ...rest } = state;
  return {
    partitionKey: instanceId,
    rowKey: STATE_ROW,
    ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
    ...encodeText('input', input ?? ''),
    hasInput: input !== null,
    ...encodeText('output', output ?? ''),
    hasOutput: output !== null,
    ...encodeText('customStatus', customStatus ?? ''),
    hasCustomStatus: customStatus !== null,
  };
}

function fromRow(row: Record<string, unknown>): InstanceState {
  return {
    instanceId: row.partitionKey as string,
    name: row.name as string,
    runtimeStatus: row.runtimeStatus as RuntimeStatus,
    createdTime: row.createdTime as string,
    lastUpdatedTime: row.lastUpdatedTime as string,
    input: row.hasInput ? decodeText('input', row) : null,
    output: row.hasOutput ? decodeText('output', row) : null,
    customStatus: row.hasCustomStatus ? decodeText('customStatus', row) : null,
    executionId: row.executionId as string,
    historyCount: row.historyCount as number,
    ...(row.parentInstanceId ? { parentInstanceId: row.parentInstanceId as string } : {}),
    ...(row.parentExecutionId ? { parentExecutionId: row.parentExecutionId as string } : {}),
    ...(typeof row.parentTaskId === 'number' ? { parentTaskId: row.parentTaskId } : {}),
    ...(row.suspendedBuffer ? { suspendedBuffer: row.suspendedBuffer as string } : {}),
    etag: row.etag as string,
  };
}
