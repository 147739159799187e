// OpenTelemetry for LabVault: one tracer provider, spans for each function invocation (HTTP,
// activities, timers, triggers), each API operation and each Azure SDK call, exported over OTLP
// (OTEL_EXPORTER_OTLP_ENDPOINT) and to Application Insights (APPLICATIONINSIGHTS_CONNECTION_STRING).
// Nothing leaves without passing PrivacySpanProcessor: only allow-listed attributes, no query
// strings, no event or status texts. Nothing here starts unless one of the two is set.
import type { TokenCredential } from '@azure/core-auth';
import * as coreTracing from '@azure/core-tracing';
import * as azureFunctions from '@azure/functions';
import functionsInstrumentation from '@azure/functions-opentelemetry-instrumentation';
import {
  AzureMonitorLogExporter,
  AzureMonitorMetricExporter,
  AzureMonitorTraceExporter,
} from '@azure/monitor-opentelemetry-exporter';
import { createAzureSdkInstrumentation } from '@azure/opentelemetry-instrumentation-azure-sdk';
import { metrics, type SpanStatusCode } from '@opentelemetry/api';
import { logs } from '@opentelemetry/api-logs';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import type { Instrumentation } from '@opentelemetry/instrumentation';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider, type LogRecordProcessor } from '@opentelemetry/sdk-logs';
import { MeterProvider, type MetricReader, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import {
  BatchSpanProcessor,
  type ReadableSpan,
  SimpleSpanProcessor,
  type Span,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

// A webpack bundle: Node's ESM loader sees only its default export.
const { AzureFunctionsInstrumentationESM } = functionsInstrumentation;

/**
 * Attributes that may leave the process. Everything else is dropped: an attribute added later by
 * a library (a header, a body, a query) cannot carry patient data out by default.
 */
export const ALLOWED_ATTRIBUTES: ReadonlySet<string> = new Set([
  'faas.trigger',
  'faas.invocation_id',
  'faas.name',
  'http.request.method',
  'http.response.status_code',
  'http.route',
  'url.full',
  // The Azure SDK's spans still use the older HTTP conventions.
  'http.method',
  'http.url',
  'http.status_code',
  'server.address',
  'server.port',
  'az.namespace',
  'az.client_request_id',
  'az.service_request_id',
  'error.type',
  'labvault.operation',
  'labvault.outcome',
  'labvault.orchestration',
]);

/** A URL without its query and fragment: SAS signatures and search parameters stay home. */
const withoutQuery = (url: string): string => url.replace(/[?#].*$/, '');

/**
 * Strips every span before any exporter sees it. `onEnding` runs for all processors before any
 * `onEnd`, so this holds for exporters added by others too.
 */
export class PrivacySpanProcessor implements SpanProcessor {
  onStart(): void {}

  onEnding(span: Span): void {
    const attributes = span.attributes as Record<string, unknown>;
    for (const key of Object.keys(attributes)) {
      if (!ALLOWED_ATTRIBUTES.has(key)) delete attributes[key];
      else if ((key === 'url.full' || key === 'http.url') && typeof attributes[key] === 'string')
        attributes[key] = withoutQuery(attributes[key]);
    }
    // Event texts (exception messages, stack traces) and the status message are free text.
    (span.events as unknown[]).length = 0;
    (span as unknown as { status: { code: SpanStatusCode } }).status = { code: span.status.code };
  }

  onEnd(_span: ReadableSpan): void {}
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

export interface TelemetryOptions {
  /** OTLP/HTTP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT), e.g. a local collector. */
  otlpEndpoint?: string | undefined;
  /** Application Insights (APPLICATIONINSIGHTS_CONNECTION_STRING). */
  applicationInsightsConnectionString?: string | undefined;
  /** Entra ID for Application Insights when local authentication is off (the Bicep turns it off). */
  applicationInsightsCredential?: TokenCredential | undefined;
  /** Further exporters, exported at once (tests: an in-memory exporter). */
  exporters?: SpanExporter[];
  /** How often metrics are sent (OTEL_METRIC_EXPORT_INTERVAL, ms; default one minute). */
  metricIntervalMs?: number | undefined;
  serviceName?: string;
}

export interface Telemetry {
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

let started: Telemetry | undefined;

/**
 * Starts tracing once per process when there is somewhere to send spans; otherwise the API's
 * no-op tracer stays (spans cost nothing). Also sets the Azure SDK's instrumenter and the Azure
 * Functions instrumentation, patched by hand: both are ESM here, which their module hooks miss.
 */
export function startTelemetry(options: TelemetryOptions): Telemetry | undefined {
  if (started) return started;
  const processors: SpanProcessor[] = [new PrivacySpanProcessor()];
  if (options.otlpEndpoint)
    processors.push(
      new BatchSpanProcessor(new OTLPTraceExporter({ url: `${options.otlpEndpoint.replace(/\/$/, '')}/v1/traces` }), {
        scheduledDelayMillis: 1000,
      }),
    );
  if (options.applicationInsightsConnectionString)
    processors.push(
      new BatchSpanProcessor(
        new AzureMonitorTraceExporter({
          connectionString: options.applicationInsightsConnectionString,
          ...(options.applicationInsightsCredential ? { credential: options.applicationInsightsCredential } : {}),
        }),
      ),
    );
  for (const exporter of options.exporters ?? []) processors.push(new SimpleSpanProcessor(exporter));
  if (processors.length === 1) return undefined;
  const resource = resourceFromAttributes({ 'service.name': options.serviceName ?? 'labvault' });
  const provider = new NodeTracerProvider({ resource, spanProcessors: processors });
  provider.register();
  const exportIntervalMillis = options.metricIntervalMs ?? 60_000;
  const readers: MetricReader[] = [];
  if (options.otlpEndpoint)
    readers.push(
      new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter({ url: `${options.otlpEndpoint.replace(/\/$/, '')}/v1/metrics` }),
        exportIntervalMillis,
      }),
    );
  if (options.applicationInsightsConnectionString)
    readers.push(
      new PeriodicExportingMetricReader({
        exporter: new AzureMonitorMetricExporter({
          connectionString: options.applicationInsightsConnectionString,
          ...(options.applicationInsightsCredential ? { credential: options.applicationInsightsCredential } : {}),
        }),
        exportIntervalMillis,
      }),
    );
  const meters = new MeterProvider({ resource, readers });
  metrics.setGlobalMeterProvider(meters);
  // Logs too: the Functions instrumentation tells the host the worker sends its own, so without
  // this provider they would go nowhere. The app's log lines are safe by construction (logger.ts).
  const logProcessors: LogRecordProcessor[] = [];
  if (options.otlpEndpoint)
    logProcessors.push(
      new BatchLogRecordProcessor({
        exporter: new OTLPLogExporter({ url: `${options.otlpEndpoint.replace(/\/$/, '')}/v1/logs` }),
        scheduledDelayMillis: 1000,
      }),
    );
  if (options.applicationInsightsConnectionString)
    logProcessors.push(
      new BatchLogRecordProcessor({
        exporter: new AzureMonitorLogExporter({
          connectionString: options.applicationInsightsConnectionString,
          ...(options.applicationInsightsCredential ? { credential: options.applicationInsightsCredential } : {}),
        }),
      }),
    );
  const loggers = new LoggerProvider({ resource, processors: logProcessors });
  logs.setGlobalLoggerProvider(loggers);
  for (const instrumentation of [createAzureSdkInstrumentation(), new AzureFunctionsInstrumentationESM()])
    patchByHand(
      instrumentation,
      instrumentation instanceof AzureFunctionsInstrumentationESM ? azureFunctions : coreTracing,
    );
  started = {
    forceFlush: async () => {
      await Promise.all([provider.forceFlush(), meters.forceFlush(), loggers.forceFlush()]);
    },
    shutdown: async () => {
      await Promise.all([provider.shutdown(), meters.shutdown(), loggers.shutdown()]);
    },
  };
  return started;
}

function patchByHand(instrumentation: Instrumentation, moduleExports: object): void {
  const definitions = (
    instrumentation as unknown as { getModuleDefinitions(): { patch?: (exports: object) => unknown }[] }
  ).getModuleDefinitions();
  for (const definition of definitions) definition.patch?.(moduleExports);
}
