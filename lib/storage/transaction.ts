import { randomUUID } from 'node:crypto';
import type { TableClient, TableTransactionResponse, TransactionAction } from '@azure/data-tables';
import {
  createDefaultHttpClient,
  createHttpHeaders,
  createPipelineRequest,
  type HttpClient,
  RestError,
} from '@azure/core-rest-pipeline';
import { createTracingClient, type OperationTracingOptions } from '@azure/core-tracing';
import { StorageLimitError, statusOf, TABLE_LIMITS } from './errors.js';

/** A failed entity-group transaction, with the index of the action the service rejected. */
export class TransactionFailedError extends Error {
  override name = 'TransactionFailedError';
  constructor(
    readonly statusCode: number,
    /** Index of the failing action when the service reports it (Azure and Azurite prefix "N:"). */
    readonly failedIndex: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(`entity-group transaction failed with ${statusCode} at action ${failedIndex ?? 'unknown'}`, options);
  }
}

function propertyBytes(value: unknown): number {
  if (typeof value === 'string') return value.length * 2;
  if (value instanceof Uint8Array) return value.byteLength;
  if (typeof value === 'object' && value !== null && 'value' in value)
    return propertyBytes((value as { value: unknown }).value);
  return 8;
}

/** Throws StorageLimitError when actions break Azure's entity-group transaction limits. */
export function assertTransactionLimits(actions: readonly TransactionAction[]): void {
  if (actions.length === 0) throw new StorageLimitError('a transaction needs at least one action');
  if (actions.length > TABLE_LIMITS.actionsPerTransaction) {
    throw new StorageLimitError(`a transaction holds at most ${TABLE_LIMITS.actionsPerTransaction} actions`);
  }
  const partition = actions[0]?.[1].partitionKey;
  let total = 0;
  for (const action of actions) {
    const entity = action[1] as Record<string, unknown>;
    if (entity.partitionKey !== partition) throw new StorageLimitError('a transaction spans exactly one partition');
    let entityBytes = 0;
    for (const [name, value] of Object.entries(entity)) {
      const bytes = propertyBytes(value);
      if (bytes > TABLE_LIMITS.bytesPerProperty) {
        throw new StorageLimitError(`property ${name} exceeds ${TABLE_LIMITS.bytesPerProperty} bytes`);
      }
      entityBytes += bytes + name.length * 2 + 8;
    }
    if (entityBytes > TABLE_LIMITS.bytesPerEntity) throw new StorageLimitError('an entity exceeds 1 MiB');
    total += entityBytes;
  }
  if (total > TABLE_LIMITS.bytesPerTransaction) throw new StorageLimitError('a transaction exceeds 4 MiB');
}

// ---- The entity-group transaction on the wire ----
//
// Why by hand: @azure/data-tables' `submitTransaction` builds a new TableClient (a whole HTTP
// pipeline) for every call and runs each action through a pipeline of its own only to capture it as
// text. On intake's hot path (five actions per order) that was about a sixth of the host's CPU per
// order (scripts/profile.ts intake). Below is the same OData batch the SDK writes (tests compare the
// two against Azurite), sent through the table client's own pipeline, so authentication (shared key
// or Entra ID), retries, tracing and LabVault's policies remain the SDK's.

const LINE = '\r\n';
const EDM_TYPES = new Set(['Binary', 'Boolean', 'DateTime', 'Double', 'Guid', 'Int32', 'Int64', 'String']);
/** The service's names for the SDK's camel-cased system properties. */
const SYSTEM_NAMES: Record<string, string> = {
  partitionKey: 'PartitionKey',
  rowKey: 'RowKey',
  etag: 'odata.etag',
  timestamp: 'Timestamp',
};
let sharedHttpClient: HttpClient | undefined;
/** Spans as the SDK's own transaction makes them (its namespace, its operation name). */
const tracing = createTracingClient({ namespace: 'Microsoft.Data.Tables', packageName: '@azure/data-tables' });

/** An entity as the service's JSON: the SDK's typing rules (Date, bigint, bytes and `{value, type}` get an @odata.type). */
function entityJson(entity: Record<string, unknown>): string {
  const out: Record<string, unknown> = {};
  for (const [property, value] of Object.entries(entity)) {
    const name = SYSTEM_NAMES[property] ?? property;
    if (value === undefined || value === null || (typeof value !== 'object' && typeof value !== 'bigint')) {
      if (typeof value === 'function' || typeof value === 'symbol') throw new Error(`Unknown EDM type ${typeof value}`);
      out[name] = value;
    } else if (typeof value === 'bigint') {
      out[name] = value.toString();
      out[`${name}@odata.type`] = 'Edm.Int64';
    } else if (value instanceof Date) {
      out[name] = value;
      out[`${name}@odata.type`] = 'Edm.DateTime';
    } else if (value instanceof Uint8Array) {
      out[name] = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
      out[`${name}@odata.type`] = 'Edm.Binary';
    } else {
      const typed = value as { value?: unknown; type?: unknown };
      if (typed.value === undefined || typeof typed.type !== 'string' || !EDM_TYPES.has(typed.type))
        throw new Error(`Unknown EDM type ${typeof typed.value}`);
      out[name] = typed.value;
      out[`${name}@odata.type`] = `Edm.${typed.type}`;
    }
  }
  return JSON.stringify(out);
}

/** `table(PartitionKey='…',RowKey='…')`: quotes doubled (OData), then URL-encoded, as the SDK does. */
function entityPath(tableUrl: string, partitionKey: string, rowKey: string): string {
  const key = (value: string) => encodeURIComponent(value.replaceAll("'", "''"));
  return `${tableUrl}(PartitionKey='${key(partitionKey)}',RowKey='${key(rowKey)}')`;
}

function changesetPart(boundary: string, tableUrl: string, action: TransactionAction): string {
  const [kind, entity] = action;
  const lines: string[] = [`--${boundary}`, 'Content-Type: application/http', 'Content-Transfer-Encoding: binary', ''];
  const keyed = entityPath(tableUrl, entity.partitionKey, entity.rowKey);
  let body: string | undefined;
  if (kind === 'create') {
    lines.push(
      `POST ${tableUrl} HTTP/1.1`,
      'Content-Type: application/json;odata=nometadata',
      'Accept: application/json;odata=minimalmetadata',
      'DataServiceVersion: 3.0',
      'Prefer: return-no-content',
    );
    body = entityJson(entity);
  } else if (kind === 'delete') {
    lines.push(
      `DELETE ${keyed} HTTP/1.1`,
      'Accept: application/json;odata=minimalmetadata',
      'DataServiceVersion: 3.0',
      'If-Match: *',
    );
  } else {
    const mode = action[2] ?? 'Merge';
    // update: If-Match the etag given, else any version (it must exist); upsert: no condition.
    const ifMatch = kind === 'update' ? (action[3]?.etag ?? '*') : undefined;
    lines.push(
      `${mode === 'Replace' ? 'PUT' : 'PATCH'} ${keyed} HTTP/1.1`,
      'Content-Type: application/json',
      'Accept: application/json',
      'DataServiceVersion: 3.0',
      ...(ifMatch ? [`If-Match: ${ifMatch}`] : []),
    );
    body = entityJson(entity);
  }
  lines.push('', body ?? '');
  return lines.join(LINE);
}

interface ODataError {
  'odata.error'?: { code?: string; message?: { value?: string } };
}

function restError(status: number, text: string | undefined): RestError {
  let parsed: ODataError = {};
  try {
    const json = text?.slice(text.indexOf('{'), text.lastIndexOf('}') + 1);
    if (json) parsed = JSON.parse(json) as ODataError;
  } catch {
    // not JSON: the status says what there is to say
  }
  const error = parsed['odata.error'];
  return new RestError(error?.message?.value ?? 'Transaction Failed', {
    statusCode: status,
    ...(error?.code ? { code: error.code } : {}),
  });
}

/** The batch response: one part per action when it committed, else the part of the action that failed. */
function parseResponse(status: number, text: string, actions: readonly TransactionAction[]): TableTransactionResponse {
  if (status < 200 || status >= 300) throw restError(status, text);
  const parts = text.split('--changesetresponse_').slice(1, -1);
  const subResponses = parts.map((part, i) => {
    const partStatus = Number(/HTTP\/1\.1 (\d{3})/.exec(part)?.[1]);
    if (!Number.isInteger(partStatus)) throw new Error('a transaction sub-response has no status');
    if (partStatus >= 300) throw restError(partStatus, part);
    const etag = /^ETag: *(.*?)\r?$/im.exec(part)?.[1];
    const rowKey = actions[i]?.[1].rowKey;
    return { status: partStatus, ...(rowKey !== undefined ? { rowKey } : {}), ...(etag !== undefined ? { etag } : {}) };
  });
  return { status, subResponses, getResponseForEntity: (rowKey) => subResponses.find((r) => r.rowKey === rowKey) };
}

async function sendBatch(table: TableClient, actions: readonly TransactionAction[]): Promise<TableTransactionResponse> {
  const batch = `batch_${randomUUID()}`;
  const changeset = `changeset_${randomUUID()}`;
  const [accountUrl = '', sas] = table.url.split('?');
  const base = accountUrl.endsWith('/') ? accountUrl.slice(0, -1) : accountUrl;
  const tableUrl = `${base}/${table.tableName}`;
  const body = [
    `--${batch}${LINE}Content-Type: multipart/mixed; boundary=${changeset}${LINE}`,
    ...actions.map((action) => changesetPart(changeset, tableUrl, action)),
    `--${changeset}--${LINE}--${batch}--${LINE}`,
  ].join(LINE);
  sharedHttpClient ??= createDefaultHttpClient();
  const httpClient = sharedHttpClient;
  // No tracing context given: the span is a child of the active one (the invocation's).
  const underActiveSpan: { tracingOptions: OperationTracingOptions } = { tracingOptions: {} };
  return tracing.withSpan('TableTransaction.submitTransaction', underActiveSpan, async (options) => {
    const request = createPipelineRequest({
      url: `${base}/$batch${sas ? `?${sas}` : ''}`,
      method: 'POST',
      body,
      headers: createHttpHeaders({
        accept: 'application/json',
        'accept-charset': 'UTF-8',
        'x-ms-version': '2019-02-02',
        DataServiceVersion: '3.0;',
        MaxDataServiceVersion: '3.0;NetFx',
        'content-type': `multipart/mixed; boundary=${batch}`,
      }),
      allowInsecureConnection: base.startsWith('http://'),
      tracingOptions: options.tracingOptions,
    });
    const response = await table.pipeline.sendRequest(httpClient, request);
    return parseResponse(response.status, response.bodyAsText ?? '', actions);
  });
}

export async function submitTransaction(
  table: TableClient,
  actions: TransactionAction[],
): Promise<TableTransactionResponse> {
  assertTransactionLimits(actions);
  try {
    return await sendBatch(table, actions);
  } catch (error) {
    const status = statusOf(error);
    if (status === 409 || status === 412 || status === 404) {
      const match = /^(\d+):/.exec(error instanceof Error ? error.message : '');
      throw new TransactionFailedError(status, match ? Number(match[1]) : undefined, { cause: error });
    }
    throw error;
  }
}
