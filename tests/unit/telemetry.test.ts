// The privacy processor against an in-memory exporter: whatever a library puts on a span, only
// allow-listed attributes leave, URLs lose their queries, event and status texts are gone.
import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, describe, expect, it } from 'vitest';
import { PrivacySpanProcessor } from '../../lib/observability/telemetry.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({
  spanProcessors: [new SimpleSpanProcessor(exporter), new PrivacySpanProcessor()],
});
const tracer = provider.getTracer('test');

afterAll(() => provider.shutdown());

describe('PrivacySpanProcessor', () => {
  it('keeps allow-listed attributes, strips queries, drops everything else, even for an exporter registered first', () => {
    const span = tracer.startSpan('HTTP GET', {
      attributes: {
        'http.request.method': 'GET',
        'url.full': 'https://st.blob.core.windows.net/specimen-uploads/lab/o1/i1?sv=2024&sig=SECRET&se=x',
        'http.request.header.authorization': 'ApiKey lvk_lab_secret',
        'labvault.patient': 'Erika Mustermann',
      },
    });
    span.setAttribute('db.statement', "PartitionKey eq 'A123456789'");
    span.setAttribute('http.url', 'https://st.table.core.windows.net/tenantdata()?$filter=PartitionKey%20eq%20x');
    span.addEvent('log', { message: 'Erika Mustermann born 1964-08-12' });
    span.recordException(new Error('No order for patient A123456789'));
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'patient A123456789 not found' });
    span.setAttribute('http.response.status_code', 404);
    span.end();

    const [exported] = exporter.getFinishedSpans();
    expect(exported?.attributes).toEqual({
      'http.request.method': 'GET',
      'url.full': 'https://st.blob.core.windows.net/specimen-uploads/lab/o1/i1',
      'http.url': 'https://st.table.core.windows.net/tenantdata()',
      'http.response.status_code': 404,
    });
    expect(exported?.events).toEqual([]);
    expect(exported?.status).toEqual({ code: SpanStatusCode.ERROR });
    expect(JSON.stringify(exported?.attributes)).not.toMatch(/Erika|A123456789|SECRET|lvk_/);
  });

  it('keeps the trace: children carry their parent, across an async boundary', async () => {
    exporter.reset();
    const parent = tracer.startSpan('createOrder');
    await context.with(trace.setSpan(context.active(), parent), async () => {
      await new Promise((r) => setTimeout(r, 1));
      tracer.startSpan('TableClient.submitTransaction', undefined, trace.setSpan(context.active(), parent)).end();
    });
    parent.end();
    const [child, root] = exporter.getFinishedSpans();
    expect(child?.spanContext().traceId).toBe(root?.spanContext().traceId);
    expect(child?.parentSpanContext?.spanId).toBe(root?.spanContext().spanId);
  });
});
