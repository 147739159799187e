import { odata, type TableClient, type TransactionAction } from '@azure/data-tables';
import { isNotFound } from '../storage/errors.js';
import { tenantPartition } from '../storage/keys.js';

/** How old an instance's copy of a tenant's restricted subjects may be when intake consults it. */
export const RESTRICTIONS_CACHE_MS = 1000;
/** Beyond the copy's age: an order checked just before that had this long to be stored. */
const IN_FLIGHT_MS = 500;

/** The tenant's partition area of subject requests: the requests and the restriction markers. */
export const SUBJECT_REQUESTS_AREA = 'subject-requests';
const AREA = SUBJECT_REQUESTS_AREA;
const PREFIX = 'restriction~';
/**
 * One row per data subject with a restriction in force, created in the restriction's own transaction
 * and deleted in its lift's: storage lets only one of two concurrent restrictions create it.
 */
const MARKER_ROW = (patientRef: string) => `${PREFIX}${patientRef}`;

interface TenantCopy {
  refs: Promise<ReadonlySet<string>>;
  readAt: number;
}

/**
 * The data subjects under restriction (Art. 18 GDPR), by tenant: the markers in the tenant's
 * subject-requests partition. Intake asks for every new order whether its subject is restricted;
 * the answer comes from this instance's copy of the tenant's markers, at most RESTRICTIONS_CACHE_MS
 * old, so intake costs one query per tenant and second rather than one read per order. A restriction
 * or a lift waits until every instance's copy has caught up (`settle`) and then sweeps the subject's
 * orders once more: an order that any instance took while copies were stale follows the change.
 */
export class RestrictionRegister {
  readonly #table: TableClient;
  readonly #copies = new Map<string, TenantCopy>();

  constructor(dependencies: { table: TableClient }) {
    this.#table = dependencies.table;
  }

  /** Whether a restriction of the subject is in force (as of at most RESTRICTIONS_CACHE_MS ago). */
  async isRestricted(tenant: string, patientRef: string): Promise<boolean> {
    let copy = this.#copies.get(tenant);
    if (!copy || performance.now() - copy.readAt > RESTRICTIONS_CACHE_MS) {
      // One query per tenant at a time: the orders arriving meanwhile share its answer.
      copy = { refs: this.#read(tenant), readAt: performance.now() };
      this.#copies.set(tenant, copy);
      copy.refs.catch(() => {
        if (this.#copies.get(tenant) === copy) this.#copies.delete(tenant);
      });
    }
    return (await copy.refs).has(patientRef);
  }

  /** The marker's row, to create in the restriction's transaction. */
  marker(tenant: string, patientRef: string, requestId: string): TransactionAction {
    return ['create', { partitionKey: tenantPartition(tenant, AREA), rowKey: MARKER_ROW(patientRef), requestId }];
  }

  /** The request whose marker stands for the subject, read from storage (not from the copy). */
  async restrictingRequest(tenant: string, patientRef: string): Promise<string | undefined> {
    try {
      const row = await this.#table.getEntity<{ requestId: string }>(
        tenantPartition(tenant, AREA),
        MARKER_ROW(patientRef),
      );
      return row.requestId;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** The marker's removal, for the lift's transaction. */
  removal(tenant: string, patientRef: string): TransactionAction {
    return ['delete', { partitionKey: tenantPartition(tenant, AREA), rowKey: MARKER_ROW(patientRef) }];
  }

  /** Resolves once every instance's copy is younger than a marker change made before the call. */
  async settle(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, RESTRICTIONS_CACHE_MS + IN_FLIGHT_MS));
  }

  async #read(tenant: string): Promise<ReadonlySet<string>> {
    const refs = new Set<string>();
    for await (const row of this.#table.listEntities<{ rowKey: string }>({
      queryOptions: {
        filter: odata`PartitionKey eq ${tenantPartition(tenant, AREA)} and RowKey ge ${PREFIX} and RowKey lt ${`${PREFIX}~`}`,
        select: ['RowKey'],
      },
    }))
      refs.add(row.rowKey.slice(PREFIX.length));
    return refs;
  }
}
