// The tenant's export lock and the runs that hold it: one tenant-wide export or one patient's
// erasure at a time. A holder whose run has ended without finishing (its last step failed for good,
// so it could not even record the failure; the host stopped between recording an export and
// starting its run; its instance was purged) would hold the lock for ever: whoever next wants the
// lock — a new export, or an erasure waiting for it — asks the durable runtime and ends that holder.
import type * as df from 'durable-functions';
import type { RequestMeta } from '../lib/audit/types.js';
import type { ExportService } from '../lib/exports/exports.js';
import type { SubjectRequestService } from '../lib/subjects/subject-requests.js';
import { exportInstanceId, subjectErasureInstanceId } from './instance-ids.js';

/** How long a recorded export may wait for its run to be started (the same request starts it). */
const START_GRACE_MS = 60_000;
const NOT_FOUND = /replied with HTTP 404 response/;
/** Runtime statuses of an instance that will do nothing more (the platform's purge checks them too). */
export const ENDED_RUNTIME_STATUSES: ReadonlySet<string> = new Set(['Completed', 'Failed', 'Terminated']);

/**
 * Whether the instance has ended for good or does not exist (never started, or purged); false while
 * it is pending, running or suspended. Any other failure of the client is the caller's error.
 */
export async function hasEnded(client: df.DurableClient, instanceId: string): Promise<boolean> {
  try {
    return ENDED_RUNTIME_STATUSES.has(String((await client.getStatus(instanceId)).runtimeStatus));
  } catch (error) {
    if (error instanceof Error && NOT_FOUND.test(error.message)) return true;
    throw error;
  }
}

/**
 * Gives back the tenant's export lock when its holder's run has ended without finishing: that
 * export ends `failed`, that erasure `failed` (to be run again). A run that still goes keeps it.
 * True when the lock is free now.
 */
export async function reclaimExportLock(
  client: df.DurableClient,
  services: { exports: ExportService; subjects: SubjectRequestService },
  tenant: string,
  meta: RequestMeta,
): Promise<boolean> {
  const holder = await services.exports.lockHolder(tenant);
  if (!holder) return true;
  if (holder.kind === 'erasure') {
    if (!(await hasEnded(client, subjectErasureInstanceId(tenant, holder.requestId)))) return false;
    await services.subjects.failErasure(tenant, holder.requestId, meta);
    return true;
  }
  if (Date.now() - Date.parse(holder.createdAt) < START_GRACE_MS) return false;
  if (!(await hasEnded(client, exportInstanceId(tenant, holder.exportId)))) return false;
  await services.exports.abandon(tenant, holder.exportId, meta);
  return true;
}
