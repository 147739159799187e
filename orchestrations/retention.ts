// Retention: the daily run that deletes what a tenant's policy says is due, and the deletion of a
// whole tenant at contract end (notice, reminder, wait, legal hold, delete, destroy keys, verify,
// certify). Inputs and outputs are ids, dates and counts only.
import * as df from 'durable-functions';
import { storageRetry } from './retry.js';
import type { Task } from 'durable-functions';
import type { DeletionState } from '../lib/retention/deletion.js';
import { getServices } from '../lib/services.js';

export const retentionInstanceId = (tenant: string, day: string) => `retention-${tenant}-${day}`;
export const deletionInstanceId = (tenant: string) => `deletion-${tenant}`;
const system = (id: string) => ({ actor: { type: 'system' as const, id: 'retention' }, correlationId: id });
const DAY = 24 * 3600 * 1000;

df.app.activity('retentionDeleteDue', {
  handler: async (input: { tenant: string; asOf: string }) =>
    (await getServices()).deletion.deleteDue(
      input.tenant,
      new Date(input.asOf),
      system(retentionInstanceId(input.tenant, input.asOf.slice(0, 10))),
    ),
});

df.app.activity('retentionFailed', {
  handler: async (input: { tenant: string; cause: string }) => {
    (await getServices()).logger.log('error', 'retention.run.failed', {
      tenant: input.tenant,
      cause: input.cause.slice(0, 200),
    });
  },
});

df.app.orchestration('retentionRun', function* (context) {
  const input = context.df.getInput<{ tenant: string; asOf: string }>();
  try {
    return yield context.df.callActivityWithRetry('retentionDeleteDue', storageRetry(), input);
  } catch (error) {
    yield context.df.callActivity('retentionFailed', {
      tenant: input.tenant,
      cause: error instanceof Error ? (error.message.split('\n')[0] ?? 'failed') : 'failed',
    });
    throw error;
  }
});

df.app.activity('deletionState', { handler: async (tenant: string) => (await getServices()).deletion.state(tenant) });
df.app.activity('deletionNotice', {
  handler: async (input: { tenant: string; kind: 'scheduled' | 'reminder' }) => {
    await (await getServices()).deletion.notice(input.tenant, input.kind);
  },
});
df.app.activity('deletionStart', { handler: async (tenant: string) => (await getServices()).deletion.start(tenant) });
df.app.activity('deletionRows', {
  handler: async (tenant: string) => (await getServices()).deletion.deleteRows(tenant),
});
df.app.activity('deletionBlobs', {
  handler: async (tenant: string) => (await getServices()).deletion.deleteBlobs(tenant),
});
df.app.activity('deletionKeys', {
  handler: async (tenant: string) => (await getServices()).deletion.destroyKeys(tenant),
});
df.app.activity('deletionVerify', { handler: async (tenant: string) => (await getServices()).deletion.verify(tenant) });
df.app.activity('deletionCertify', {
  handler: async (
    input: Parameters<Awaited<ReturnType<typeof getServices>>['deletion']['certify']>[1] & { tenant: string },
  ) => {
    const { tenant, ...facts } = input;
    const signed = await (await getServices()).deletion.certify(tenant, facts);
    return {
      certificateId: signed.certificate.id,
      passed: (signed.certificate.verification as { passed: boolean }).passed,
    };
  },
});

/** External events of a tenant's deletion: raised by the legal-hold routes and the admin's confirmation. */
export const DELETION_EVENTS = {
  hold: 'legal-hold',
  lifted: 'legal-hold-lifted',
  confirmed: 'deletion-confirmed',
} as const;

/**
 * A tenant's deletion after termination: it waits for its date (at least the notice period after the
 * termination was recorded; the notice went out then), reminds the tenant 7 days before, pauses for a
 * legal hold, and starts at once when the tenant's admin confirms early deletion. A withdrawal
 * terminates this instance; the start step re-checks the state in any case.
 */
df.app.orchestration('tenantDeletion', function* (context) {
  const tenant = context.df.getInput<string>();
  let reminded = false;
  for (;;) {
    const state = (yield context.df.callActivityWithRetry('deletionState', storageRetry(), tenant)) as
      DeletionState | undefined;
    if (!state?.deleteAt || (state.status !== 'scheduled' && state.status !== 'on-hold' && state.status !== 'deleting'))
      return { status: state?.status ?? 'not-scheduled' };
    if (state.status === 'deleting') break; // a deletion under way, resumed after a crash
    const held = context.df.waitForExternalEvent(DELETION_EVENTS.hold);
    const confirmed = context.df.waitForExternalEvent(DELETION_EVENTS.confirmed);
    if (state.legalHold) {
      // A legal hold blocks deletion until it is lifted, whatever the date.
      yield context.df.waitForExternalEvent(DELETION_EVENTS.lifted);
      continue;
    }
    const now = context.df.currentUtcDateTime;
    const deleteAt = new Date(state.deleteAt);
    const reminderAt = new Date(deleteAt.getTime() - 7 * DAY);
    const next = !reminded && reminderAt > now ? reminderAt : deleteAt > now ? deleteAt : undefined;
    if (!next) {
      const started = (yield context.df.callActivityWithRetry('deletionStart', storageRetry(), tenant)) as
        { startedAt: string } | { refused: string };
      if ('startedAt' in started) break;
      continue; // held, withdrawn or changed meanwhile: look again
    }
    const timer = context.df.createTimer(next);
    const winner = (yield context.df.Task.any([timer, held, confirmed])) as Task;
    if (winner !== timer) {
      timer.cancel();
      continue;
    }
    if (next === reminderAt) {
      reminded = true;
      yield context.df.callActivityWithRetry('deletionNotice', storageRetry(), { tenant, kind: 'reminder' });
    }
  }
  try {
    return yield* deleteTenant(context, tenant);
  } catch (error) {
    yield context.df.callActivity('deletionFailed', {
      tenant,
      cause: error instanceof Error ? (error.message.split('\n')[0] ?? 'failed') : 'failed',
    });
    throw error;
  }
});

df.app.activity('deletionFailed', {
  handler: async (input: { tenant: string; cause: string }) => {
    (await getServices()).deletion.failed(input.tenant, input.cause);
  },
});

/** The irreversible part, in steps that can each be repeated; progress in the custom status. */
function* deleteTenant(context: df.OrchestrationContext, tenant: string): Generator<Task, unknown, unknown> {
  const startedAt = ((yield context.df.callActivityWithRetry('deletionState', storageRetry(), tenant)) as DeletionState)
    .startedAt as string;
  context.df.setCustomStatus({ phase: 'rows' });
  const rows = (yield context.df.callActivityWithRetry('deletionRows', storageRetry(), tenant)) as Record<
    string,
    number
  >;
  context.df.setCustomStatus({ phase: 'blobs', rows: Object.values(rows).reduce((a, b) => a + b, 0) });
  const blobs = (yield context.df.callActivityWithRetry('deletionBlobs', storageRetry(), tenant)) as {
    blobs: number;
    bytes: number;
  };
  context.df.setCustomStatus({ phase: 'keys' });
  const keys = (yield context.df.callActivityWithRetry('deletionKeys', storageRetry(), tenant)) as unknown[];
  context.df.setCustomStatus({ phase: 'verification' });
  const verification = (yield context.df.callActivityWithRetry('deletionVerify', storageRetry(), tenant)) as Record<
    string,
    number
  >;
  context.df.setCustomStatus({ phase: 'certificate' });
  return yield context.df.callActivityWithRetry('deletionCertify', storageRetry(), {
    tenant,
    startedAt,
    rows,
    blobs,
    keys,
    verification,
  });
}
