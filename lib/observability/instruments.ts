// What LabVault's code records: spans around its own work, the trace context durable inputs carry,
// and the metrics an operator watches. Only the OpenTelemetry API: cheap no-ops until
// startTelemetry (telemetry.ts, loaded by the function app's entry) installs the SDK, and safe to
// import from any domain, the admin CLI and the local host.
import {
  type Attributes,
  context,
  type Context,
  metrics,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';

const TRACER = 'labvault';

/** The tracer LabVault's own spans come from. */
export const tracer = () => trace.getTracer(TRACER);

/** Runs `work` in a span; the span records the outcome (never the error's text). */
export async function inSpan<T>(
  name: string,
  attributes: Attributes,
  work: () => Promise<T>,
  options: { kind?: SpanKind; parent?: Context } = {},
): Promise<T> {
  const span = tracer().startSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes }, options.parent);
  try {
    const result = await context.with(trace.setSpan(options.parent ?? context.active(), span), work);
    return result;
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR });
    span.setAttribute('error.type', error instanceof Error ? error.name : 'error');
    throw error;
  } finally {
    span.end();
  }
}

/** The W3C traceparent of the active span (for durable inputs), if tracing runs. */
export function currentTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}

/** A context whose parent is `traceparent` (from a request header or a durable input). */
export function contextFrom(traceparent: string | undefined): Context {
  return traceparent ? propagation.extract(context.active(), { traceparent }) : context.active();
}

// ── metrics an operator watches ──────────────────────────────────────────────────────────────
// Instruments come from the global meter, so they are no-ops until startTelemetry ran. Their
// attributes are operation names, formats, outcomes and kinds: never ids, never patient data.

const meter = () => metrics.getMeter(TRACER);
let instruments:
  | {
      requests: ReturnType<ReturnType<typeof meter>['createCounter']>;
      duration: ReturnType<ReturnType<typeof meter>['createHistogram']>;
      orders: ReturnType<ReturnType<typeof meter>['createCounter']>;
      images: ReturnType<ReturnType<typeof meter>['createHistogram']>;
      workflows: ReturnType<ReturnType<typeof meter>['createHistogram']>;
      alerts: ReturnType<ReturnType<typeof meter>['createCounter']>;
    }
  | undefined;

function instrumentsOf() {
  instruments ??= {
    requests: meter().createCounter('labvault.http.requests', {
      description: 'API requests by operation and status class',
    }),
    duration: meter().createHistogram('labvault.http.duration', { description: 'API request time', unit: 'ms' }),
    orders: meter().createCounter('labvault.orders', { description: 'Orders accepted and refused, by intake format' }),
    images: meter().createHistogram('labvault.images.processing', {
      description: 'Image processing time by outcome',
      unit: 'ms',
    }),
    workflows: meter().createHistogram('labvault.workflow.duration', {
      description: 'Export and deletion durations',
      unit: 's',
    }),
    alerts: meter().createCounter('labvault.security.alerts', {
      description: 'Security alerts (login failures, locks, spraying, stuffing) by kind',
    }),
  };
  return instruments;
}

/** The intake formats by the operation that receives them. */
const INTAKE: Record<string, string> = {
  createOrder: 'json',
  fhirTransaction: 'fhir-r4',
  hl7v2Message: 'hl7v2',
  ldtUpload: 'ldt3',
};

/** One API request: counted by operation and status class; an intake request also as an order. */
export function recordRequest(operation: string, status: number, ms: number): void {
  const { requests, duration, orders } = instrumentsOf();
  const statusClass = `${Math.floor(status / 100)}xx`;
  requests.add(1, { 'labvault.operation': operation, 'http.status_class': statusClass });
  duration.record(ms, { 'labvault.operation': operation });
  const format = INTAKE[operation];
  if (format && status < 500) orders.add(1, { format, outcome: status < 300 ? 'accepted' : 'refused' });
}

export function recordImageProcessed(outcome: string, ms: number): void {
  instrumentsOf().images.record(ms, { outcome });
}

export function recordWorkflow(workflow: 'export' | 'deletion', seconds: number): void {
  instrumentsOf().workflows.record(seconds, { workflow });
}

export function recordSecurityAlert(kind: string): void {
  instrumentsOf().alerts.add(1, { kind });
}

/** A storage request sent again by the SDK's retry policy (a throttled or failing account shows here first). */
export function recordStorageRetry(service: string): void {
  (storageRetries ??= meter().createCounter('labvault.storage.retries', {
    description: 'Storage requests the SDK sent again',
  })).add(1, { service });
}
let storageRetries: ReturnType<ReturnType<typeof meter>['createCounter']> | undefined;

/**
 * The nearest deadline of every open breach, in seconds (negative: overdue), for the processor's own
 * clock and the controllers' 72 hours: read from the register at each collection, never stored.
 */
export function observeBreachDeadlines(
  openBreaches: () => Promise<Record<string, unknown>[]>,
  clock: () => number = Date.now,
): void {
  const gauge = meter().createObservableGauge('labvault.breach.deadline.remaining', {
    description: 'Seconds until the nearest deadline of an open breach',
    unit: 's',
  });
  gauge.addCallback(async (result) => {
    const open = (await openBreaches()).filter((b) => b.status === 'open');
    for (const clockName of ['processor', 'controller'] as const) {
      const deadlines = open
        .map((b) => Date.parse(String((b.deadlines as Record<string, unknown>)[clockName])))
        .filter((t) => Number.isFinite(t));
      if (deadlines.length > 0) result.observe((Math.min(...deadlines) - clock()) / 1000, { clock: clockName });
    }
  });
}
