// Breach handling: scope, notify every affected tenant at once, run the clocks (reminders,
// escalation), take phased updates and acknowledgements as they come, and close only with the
// internal analysis. Inputs and outputs are ids, counts and times only.
import * as df from 'durable-functions';
import { storageRetry } from './retry.js';
import type { Task } from 'durable-functions';
import type { BreachTiming, TenantScope } from '../lib/breaches/breaches.js';
import { getServices } from '../lib/services.js';

export const breachInstanceId = (id: string) => `breach-${id}`;
export const breachTenantInstanceId = (id: string, tenant: string) => `breach-${id}-${tenant}`;
const HOUR = 3600 * 1000;

interface BreachRun {
  breachId: string;
  timing: BreachTiming;
}

const services = () => getServices();

df.app.activity('breachScope', { handler: async (input: BreachRun) => (await services()).breaches.computeScope(input.breachId) });
df.app.activity('breachNotify', {
  handler: async (input: BreachRun & { tenant: string; seq: number }) => {
    await (await services()).breaches.notify(input.breachId, input.tenant, input.seq);
  },
});
df.app.activity('breachDeliver', {
  handler: async (input: BreachRun & { tenant: string; seq: number }) => (await services()).breaches.deliver(input.breachId, input.tenant, input.seq),
});
df.app.activity('breachTimeline', {
  handler: async (input: { breachId: string; event: string; detail: string; tenant?: string }) => {
    await (await services()).breaches.timeline(input.breachId, input.event, input.detail, input.tenant);
  },
});
df.app.activity('breachRemind', {
  handler: async (input: BreachRun & { tenant: string; kind: 'reminder' | 'escalation'; hours: number }) => {
    await (await services()).breaches.remind(input.breachId, input.tenant, input.kind, input.hours);
  },
});
df.app.activity('breachRemindAnalysis', {
  handler: async (input: BreachRun) => {
    await (await services()).breaches.remindAnalysis(input.breachId);
  },
});

/** Delivers a notice to the tenant's webhook with backoff; a final failure is recorded, not fatal. */
function* deliver(context: df.OrchestrationContext, input: BreachRun, tenant: string, seq: number): Generator<Task, void, unknown> {
  try {
    yield context.df.callActivityWithRetry('breachDeliver', new df.RetryOptions(1000, 4), { ...input, tenant, seq });
  } catch {
    yield context.df.callActivityWithRetry('breachTimeline', storageRetry(), { breachId: input.breachId, event: 'webhook-failed', detail: `notification ${seq}: all attempts failed`, tenant });
  }
}

/** One tenant: the first notice's delivery, then reminders and escalation until it acknowledges. */
df.app.orchestration('breachTenantWatch', function* (context) {
  const input = context.df.getInput<BreachRun & { tenant: string }>();
  yield* deliver(context, input, input.tenant, 1);
  const ack = context.df.waitForExternalEvent('ack');
  const aware = Date.parse(input.timing.awareAt);
  const milestones: [number, 'reminder' | 'escalation'][] = [
    ...input.timing.reminderHours.map((h): [number, 'reminder'] => [h, 'reminder']),
    [input.timing.escalationHours, 'escalation'],
  ];
  for (const [hours, kind] of milestones.sort((a, b) => a[0] - b[0])) {
    const timer = context.df.createTimer(new Date(aware + hours * HOUR));
    const winner = (yield context.df.Task.any([ack, timer])) as Task;
    if (winner === ack) return 'acknowledged';
    yield context.df.callActivityWithRetry('breachRemind', storageRetry(), { ...input, kind, hours });
  }
  yield ack;
  return 'acknowledged';
});

df.app.orchestration('breachHandling', function* (context) {
  const input = context.df.getInput<BreachRun>();
  const scope = (yield context.df.callActivityWithRetry('breachScope', storageRetry(), input)) as TenantScope[];
  const tenants = scope.map((s) => s.tenant);
  // At once and in parallel: the processor does not wait for its own risk assessment (Art. 33(2)).
  yield context.df.Task.all(tenants.map((tenant) => context.df.callActivityWithRetry('breachNotify', storageRetry(), { ...input, tenant, seq: 1 })));
  const watchers = new Set<Task>(tenants.map((tenant) => context.df.callSubOrchestrator('breachTenantWatch', { ...input, tenant }, breachTenantInstanceId(input.breachId, tenant))));
  let analysis = context.df.waitForExternalEvent('analysis');
  let update = context.df.waitForExternalEvent('update');
  let reminder = context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + input.timing.analysisReminderHours * HOUR));
  for (;;) {
    const winner = (yield context.df.Task.any([...watchers, analysis, update, reminder])) as Task;
    if (winner === analysis) {
      if ((analysis.result as { closed?: boolean } | undefined)?.closed) return { status: 'closed', tenants: tenants.length };
      analysis = context.df.waitForExternalEvent('analysis');
    } else if (winner === update) {
      const seq = (update.result as { seq: number }).seq;
      yield context.df.Task.all(tenants.map((tenant) => context.df.callActivityWithRetry('breachNotify', storageRetry(), { ...input, tenant, seq })));
      for (const tenant of tenants) yield* deliver(context, input, tenant, seq);
      update = context.df.waitForExternalEvent('update');
    } else if (winner === reminder) {
      yield context.df.callActivityWithRetry('breachRemindAnalysis', storageRetry(), input);
      reminder = context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + input.timing.analysisReminderHours * HOUR));
    } else {
      watchers.delete(winner);
    }
  }
});
