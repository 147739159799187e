// Breach handling: scope, notify every affected tenant at once, run the clocks (reminders,
// escalation), take phased updates and acknowledgements as they come, and close only with the
// internal analysis. Inputs and outputs are ids, counts and times only.
import * as df from 'durable-functions';
import { deliveryRetry, storageRetry } from './retry.js';
import type { Task } from 'durable-functions';
import type { BreachTiming, DeliveryMessage, TenantScope } from '../lib/breaches/breaches.js';
import { getServices } from '../lib/services.js';

export const breachInstanceId = (id: string) => `breach-${id}`;
export const breachTenantInstanceId = (id: string, tenant: string) => `breach-${id}-${tenant}`;
const HOUR = 3600 * 1000;

interface BreachRun {
  breachId: string;
  timing: BreachTiming;
}

const services = () => getServices();

df.app.activity('breachScope', {
  handler: async (input: BreachRun) => (await services()).breaches.computeScope(input.breachId),
});
df.app.activity('breachNotify', {
  handler: async (input: BreachRun & { tenant: string; seq: number }) => {
    await (await services()).breaches.notify(input.breachId, input.tenant, input.seq);
  },
});
df.app.activity('breachDeliver', {
  handler: async (input: { breachId: string; tenant: string; message: DeliveryMessage }) =>
    (await services()).breaches.deliver(input.breachId, input.tenant, input.message),
});
df.app.activity('breachDeliveryFailed', {
  handler: async (input: { breachId: string; tenant: string; message: DeliveryMessage }) => {
    await (await services()).breaches.deliveryFailed(input.breachId, input.tenant, input.message);
  },
});
df.app.activity('breachTimeline', {
  handler: async (input: { breachId: string; event: string; detail: string; tenant?: string }) => {
    await (await services()).breaches.timeline(input.breachId, input.event, input.detail, input.tenant);
  },
});
df.app.activity('breachRemind', {
  handler: async (input: BreachRun & { tenant: string; kind: 'reminder' | 'escalation'; hours: number }) =>
    (await services()).breaches.remind(input.breachId, input.tenant, input.kind, input.hours),
});
df.app.activity('breachRemindAnalysis', {
  handler: async (input: BreachRun & { dueAt?: string }) => {
    await (await services()).breaches.remindAnalysis(input.breachId, input.dueAt);
  },
});

export const deliveryInstanceId = (breachId: string, tenant: string, message: DeliveryMessage, attempt = '') =>
  `breach-${breachId}-${tenant}-${message.kind}-${message.seq}${message.hours !== undefined ? `-${message.hours}` : ''}${attempt ? `-${attempt}` : ''}`;

/**
 * One webhook message until it is delivered: first retry after LABVAULT_WEBHOOK_FIRST_RETRY_SECONDS
 * (10 at most), doubling up to an hour between attempts, for more than 24 hours in all. A message
 * that never got through is recorded and the security officers are told. Runs on its own, so the
 * breach's clocks go on while a receiver is down.
 */
df.app.orchestration('breachDelivery', function* (context) {
  const input = context.df.getInput<{
    breachId: string;
    tenant: string;
    message: DeliveryMessage;
    firstRetrySeconds: number;
  }>();
  try {
    return yield context.df.callActivityWithRetry('breachDeliver', deliveryRetry(input.firstRetrySeconds), {
      breachId: input.breachId,
      tenant: input.tenant,
      message: input.message,
    });
  } catch {
    yield context.df.callActivityWithRetry('breachDeliveryFailed', storageRetry(), {
      breachId: input.breachId,
      tenant: input.tenant,
      message: input.message,
    });
    return 'failed';
  }
});

/** Starts a message's delivery as a sub-orchestration; the caller races it with its clocks. */
function delivery(context: df.OrchestrationContext, input: BreachRun, tenant: string, message: DeliveryMessage): Task {
  return context.df.callSubOrchestrator(
    'breachDelivery',
    { breachId: input.breachId, tenant, message, firstRetrySeconds: input.timing.firstRetrySeconds },
    deliveryInstanceId(input.breachId, tenant, message),
  );
}

/** One tenant: the first notice's delivery, then reminders (delivered too) and escalation until it acknowledges. */
df.app.orchestration('breachTenantWatch', function* (context) {
  const input = context.df.getInput<BreachRun & { tenant: string }>();
  const deliveries = new Set<Task>([delivery(context, input, input.tenant, { kind: 'notification', seq: 1 })]);
  const ack = context.df.waitForExternalEvent('ack');
  const aware = Date.parse(input.timing.awareAt);
  const milestones: [number, 'reminder' | 'escalation'][] = [
    ...input.timing.reminderHours.map((h): [number, 'reminder'] => [h, 'reminder']),
    [input.timing.escalationHours, 'escalation'],
  ];
  for (const [hours, kind] of milestones.sort((a, b) => a[0] - b[0])) {
    const timer = context.df.createTimer(new Date(aware + hours * HOUR));
    for (;;) {
      const winner = (yield context.df.Task.any([ack, timer, ...deliveries])) as Task;
      if (winner === ack) {
        timer.cancel();
        return 'acknowledged';
      }
      if (winner === timer) break;
      deliveries.delete(winner); // a delivery finished (delivered, or given up and recorded)
    }
    const remindedOf = (yield context.df.callActivityWithRetry('breachRemind', storageRetry(), {
      ...input,
      kind,
      hours,
    })) as number | undefined;
    if (kind === 'reminder' && remindedOf !== undefined)
      deliveries.add(delivery(context, input, input.tenant, { kind: 'reminder', seq: remindedOf, hours }));
  }
  for (;;) {
    const winner = (yield context.df.Task.any([ack, ...deliveries])) as Task;
    if (winner === ack) return 'acknowledged';
    deliveries.delete(winner);
  }
});

df.app.orchestration('breachHandling', function* (context) {
  const input = context.df.getInput<BreachRun>();
  const scope = (yield context.df.callActivityWithRetry('breachScope', storageRetry(), input)) as TenantScope[];
  const tenants = scope.map((s) => s.tenant);
  // At once and in parallel: the processor does not wait for its own risk assessment (Art. 33(2)).
  yield context.df.Task.all(
    tenants.map((tenant) =>
      context.df.callActivityWithRetry('breachNotify', storageRetry(), { ...input, tenant, seq: 1 }),
    ),
  );
  const watchers = new Set<Task>(
    tenants.map((tenant) =>
      context.df.callSubOrchestrator(
        'breachTenantWatch',
        { ...input, tenant },
        breachTenantInstanceId(input.breachId, tenant),
      ),
    ),
  );
  const deliveries = new Set<Task>();
  let analysis = context.df.waitForExternalEvent('analysis');
  let update = context.df.waitForExternalEvent('update');
  let reminderAt = new Date(context.df.currentUtcDateTime.getTime() + input.timing.analysisReminderHours * HOUR);
  let reminder = context.df.createTimer(reminderAt);
  for (;;) {
    const winner = (yield context.df.Task.any([...watchers, ...deliveries, analysis, update, reminder])) as Task;
    if (winner === analysis) {
      if ((analysis.result as { closed?: boolean } | undefined)?.closed)
        return { status: 'closed', tenants: tenants.length };
      analysis = context.df.waitForExternalEvent('analysis');
    } else if (winner === update) {
      const seq = (update.result as { seq: number }).seq;
      yield context.df.Task.all(
        tenants.map((tenant) =>
          context.df.callActivityWithRetry('breachNotify', storageRetry(), { ...input, tenant, seq }),
        ),
      );
      for (const tenant of tenants) deliveries.add(delivery(context, input, tenant, { kind: 'notification', seq }));
      update = context.df.waitForExternalEvent('update');
    } else if (winner === reminder) {
      // The due time names this reminder: a repeat of the step after a crash records it once.
      yield context.df.callActivityWithRetry('breachRemindAnalysis', storageRetry(), {
        ...input,
        dueAt: reminderAt.toISOString(),
      });
      reminderAt = new Date(context.df.currentUtcDateTime.getTime() + input.timing.analysisReminderHours * HOUR);
      reminder = context.df.createTimer(reminderAt);
    } else {
      watchers.delete(winner);
      deliveries.delete(winner);
    }
  }
});
