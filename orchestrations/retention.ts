// Retention: the daily run that deletes what a tenant's policy says is due, and the deletion of a
// whole tenant at contract end (notice, reminder, wait, legal hold, delete, destroy keys, verify,
// certify). Inputs and outputs are ids, dates and counts only.
import * as df from 'durable-functions';
import { storageRetry } from './retry.js';
import type { Task } from 'durable-functions';
import { getServices } from '../lib/services.js';

export const retentionInstanceId = (tenant: string, day: string) => `retention-${tenant}-${day}`;
export const deletionInstanceId = (tenant: string) => `deletion-${tenant}`;
const system = (id: string) => ({ actor: { type: 'system' as const, id: 'retention' }, correlationId: id });
const DAY = 24 * 3600 * 1000;

df.app.activity('retentionDeleteDue', {
  handler: async (input: { tenant: string; asOf: string }) => (await getServices()).deletion.deleteDue(input.tenant, new Date(input.asOf), system(retentionInstanceId(input.tenant, input.asOf.slice(0, 10)))),
});

df.app.orchestration('retentionRun', function* (context) {
  const input = context.df.getInput<{ tenant: string; asOf: string }>();
  return yield context.df.callActivityWithRetry('retentionDeleteDue', storageRetry(), input);
});

df.app.activity('deletionState', { handler: async (tenant: string) => (await getServices()).deletion.state(tenant) });
df.app.activity('deletionHeld', { handler: async (tenant: string) => (await getServices()).deletion.isHeld(tenant) });
df.app.activity('deletionNotice', {
  handler: async (input: { tenant: string; kind: 'scheduled' | 'reminder' }) => {
    await (await getServices()).deletion.notice(input.tenant, input.kind);
  },
});
df.app.activity('deletionStart', { handler: async (tenant: string) => (await getServices()).deletion.start(tenant) });
df.app.activity('deletionRows', { handler: async (tenant: string) => (await getServices()).deletion.deleteRows(tenant) });
df.app.activity('deletionBlobs', { handler: async (tenant: string) => (await getServices()).deletion.deleteBlobs(tenant) });
df.app.activity('deletionKeys', { handler: async (tenant: string) => (await getServices()).deletion.destroyKeys(tenant) });
df.app.activity('deletionVerify', { handler: async (tenant: string) => (await getServices()).deletion.verify(tenant) });
df.app.activity('deletionCertify', {
  handler: async (input: Parameters<Awaited<ReturnType<typeof getServices>>['deletion']['certify']>[1] & { tenant: string }) => {
    const { tenant, ...facts } = input;
    const signed = await (await getServices()).deletion.certify(tenant, facts);
    return { certificateId: signed.certificate.id, passed: (signed.certificate.verification as { passed: boolean }).passed };
  },
});

df.app.orchestration('tenantDeletion', function* (context) {
  const tenant = context.df.getInput<string>();
  const state = (yield context.df.callActivityWithRetry('deletionState', storageRetry(), tenant)) as { deleteAt: string | null } | undefined;
  if (!state?.deleteAt) return { status: 'not-scheduled' };
  const deleteAt = new Date(state.deleteAt);
  const reminderAt = new Date(deleteAt.getTime() - 7 * DAY);
  yield context.df.callActivityWithRetry('deletionNotice', storageRetry(), { tenant, kind: 'scheduled' });
  let reminded = false;
  for (;;) {
    if ((yield context.df.callActivityWithRetry('deletionHeld', storageRetry(), tenant)) as boolean) {
      // A legal hold blocks deletion until it is lifted, whatever the date.
      yield context.df.waitForExternalEvent('legal-hold-lifted');
      continue;
    }
    const now = context.df.currentUtcDateTime;
    const next = !reminded && reminderAt > now ? reminderAt : deleteAt > now ? deleteAt : undefined;
    if (!next) break;
    const timer = context.df.createTimer(next);
    const hold = context.df.waitForExternalEvent('legal-hold');
    const winner = (yield context.df.Task.any([timer, hold])) as Task;
    if (winner === hold) {
      timer.cancel();
      continue;
    }
    if (next === reminderAt) {
      reminded = true;
      yield context.df.callActivityWithRetry('deletionNotice', storageRetry(), { tenant, kind: 'reminder' });
    }
  }
  const startedAt = (yield context.df.callActivityWithRetry('deletionStart', storageRetry(), tenant)) as string;
  const rows = (yield context.df.callActivityWithRetry('deletionRows', storageRetry(), tenant)) as Record<string, number>;
  const blobs = (yield context.df.callActivityWithRetry('deletionBlobs', storageRetry(), tenant)) as { blobs: number; bytes: number };
  const keys = (yield context.df.callActivityWithRetry('deletionKeys', storageRetry(), tenant)) as unknown[];
  const verification = (yield context.df.callActivityWithRetry('deletionVerify', storageRetry(), tenant)) as Record<string, number>;
  return yield context.df.callActivityWithRetry('deletionCertify', storageRetry(), { tenant, startedAt, rows, blobs, keys, verification });
});
