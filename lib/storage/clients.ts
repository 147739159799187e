import type { PipelinePolicy, PipelineRequest } from '@azure/core-rest-pipeline';
import { TableClient, TableServiceClient } from '@azure/data-tables';
import { recordStorageRetry } from '../observability/instruments.js';
import type { TokenCredential } from '@azure/identity';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import type { StorageSettings } from '../config.js';
import { type ReadEndpointState, secondaryReadPolicy } from './secondary.js';

/** Names of the tables LabVault owns. Each domain folder owns its partitions inside them. */
export const TABLES = {
  /** Tenant-scoped rows of every domain, partitioned `{tenant}~{area}[~{shard}]`. */
  tenantData: 'tenantdata',
  /** Rows that belong to no tenant: the tenant directory, operator realm. */
  platform: 'platform',
} as const;

export interface StorageClients {
  /** Which endpoint served the last table read (primary, or the RA-GZRS secondary). */
  readEndpoint: ReadEndpointState;
  /** Present with a connection string that holds an account key (Azurite, development). */
  sharedKey?: { accountName: string; accountKey: string };
  table(name: string): TableClient;
  tableService: TableServiceClient;
  blobService: BlobServiceClient;
  /**
   * The read-access secondary's blob endpoint (RA-GZRS), for the few reads that must work while the
   * primary is lost (the audit anchors); never written to.
   */
  secondaryBlobService?: BlobServiceClient;
  queueService: QueueServiceClient;
}

function parseConnectionString(cs: string): Map<string, string> {
  const parts = new Map<string, string>();
  for (const segment of cs.split(';')) {
    const eq = segment.indexOf('=');
    if (eq > 0) parts.set(segment.slice(0, eq).toLowerCase(), segment.slice(eq + 1));
  }
  return parts;
}

/**
 * Builds the storage clients in one place. Connection strings are for Azurite and development;
 * production uses identity-based service URIs with a token credential.
 */
export function createStorageClients(settings: StorageSettings, credential?: TokenCredential): StorageClients {
  const readEndpoint: ReadEndpointState = { lastRead: 'primary' };
  const tableOptions = {
    additionalPolicies: [
      ...(settings.secondary
        ? [
            {
              policy: secondaryReadPolicy(settings.secondary.tableServiceUri, readEndpoint),
              position: 'perCall' as const,
            },
          ]
        : []),
      { policy: retryCounter('table'), position: 'perRetry' as const },
    ],
  };
  const blobOptions = settings.secondary
    ? { retryOptions: { secondaryHost: new URL(settings.secondary.blobServiceUri).host, maxTries: 3 } }
    : {};
  if (settings.kind === 'connectionString') {
    const cs = settings.connectionString;
    const tableEndpoint = parseConnectionString(cs).get('tableendpoint') ?? '';
    const allowInsecureConnection = tableEndpoint.startsWith('http://');
    const tables = new Map<string, TableClient>();
    const parts = parseConnectionString(cs);
    const accountName = parts.get('accountname');
    const accountKey = parts.get('accountkey');
    return {
      readEndpoint,
      ...(accountName && accountKey ? { sharedKey: { accountName, accountKey } } : {}),
      table(name) {
        let client = tables.get(name);
        if (!client) {
          client = TableClient.fromConnectionString(cs, name, { allowInsecureConnection, ...tableOptions });
          tables.set(name, client);
        }
        return client;
      },
      tableService: TableServiceClient.fromConnectionString(cs, { allowInsecureConnection, ...tableOptions }),
      blobService: BlobServiceClient.fromConnectionString(cs, blobOptions),
      ...(settings.secondary && accountName && accountKey
        ? {
            secondaryBlobService: new BlobServiceClient(
              settings.secondary.blobServiceUri,
              new StorageSharedKeyCredential(accountName, accountKey),
            ),
          }
        : {}),
      queueService: QueueServiceClient.fromConnectionString(cs),
    };
  }
  if (!credential) throw new Error('identity-based storage needs a token credential');
  const tables = new Map<string, TableClient>();
  return {
    readEndpoint,
    table(name) {
      let client = tables.get(name);
      if (!client) {
        client = new TableClient(settings.tableServiceUri, name, credential, tableOptions);
        tables.set(name, client);
      }
      return client;
    },
    tableService: new TableServiceClient(settings.tableServiceUri, credential, tableOptions),
    blobService: new BlobServiceClient(settings.blobServiceUri, credential, blobOptions),
    ...(settings.secondary
      ? { secondaryBlobService: new BlobServiceClient(settings.secondary.blobServiceUri, credential) }
      : {}),
    queueService: new QueueServiceClient(settings.queueServiceUri, credential),
  };
}

/** Counts the attempts after the first of each request: the SDK's retries, as a metric. */
function retryCounter(service: string): PipelinePolicy {
  const sent = new WeakSet<PipelineRequest>();
  return {
    name: 'labvaultRetryCounter',
    sendRequest(request, next) {
      if (sent.has(request)) recordStorageRetry(service);
      else sent.add(request);
      return next(request);
    },
  };
}

/** Blob containers, each owned by one domain. */
export const CONTAINERS = {
  uploads: 'specimen-uploads',
  images: 'specimen-images',
  quarantine: 'quarantine',
  exports: 'exports',
  backups: 'backups',
  /** Anchors of the audit chains (WORM in production); they hold hashes, no tenant data. */
  auditArchive: 'audit-archive',
} as const;

/** Creates every table and container LabVault needs; safe to run on every start. */
export async function ensureTables(clients: StorageClients): Promise<void> {
  for (const name of Object.values(TABLES)) {
    await clients.tableService.createTable(name);
  }
  for (const name of Object.values(CONTAINERS)) {
    await clients.blobService.getContainerClient(name).createIfNotExists();
  }
}
