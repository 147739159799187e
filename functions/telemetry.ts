// First import of the entry: tracing starts before any function registers, when the app settings
// name a destination (OTEL_EXPORTER_OTLP_ENDPOINT, APPLICATIONINSIGHTS_CONNECTION_STRING).
import { ManagedIdentityCredential } from '@azure/identity';
import { observeBreachDeadlines } from '../lib/observability/instruments.js';
import { startTelemetry } from '../lib/observability/telemetry.js';
import { getServices } from '../lib/services.js';

const telemetry = startTelemetry({
  otlpEndpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined,
  metricIntervalMs: Number(process.env.OTEL_METRIC_EXPORT_INTERVAL) || undefined,
  applicationInsightsConnectionString: process.env.APPLICATIONINSIGHTS_CONNECTION_STRING || undefined,
  // "Authorization=AAD": ingestion with the app's identity (local authentication is off).
  applicationInsightsCredential: /Authorization=AAD/.test(process.env.APPLICATIONINSIGHTS_AUTHENTICATION_STRING ?? '')
    ? new ManagedIdentityCredential()
    : undefined,
});

// Read from the register at each collection, and only when metrics go somewhere.
if (telemetry) observeBreachDeadlines(async () => (await getServices()).breaches.list());
