import { app } from '@azure/functions';
import { invalidInput } from '../lib/errors.js';
import {
  fhirCapabilities,
  fhirReadServiceRequest,
  fhirReadTask,
  fhirSearchServiceRequests,
  fhirTransaction,
} from '../lib/intake/api.js';
import { capabilityStatement } from '../lib/intake/fhir/capability.js';
import { idempotencyKeySchema } from '../lib/orders/api.js';
import { handle, metaOf } from './http.js';

const FHIR_JSON = { 'Content-Type': 'application/fhir+json; charset=utf-8' };

app.http(
  fhirTransaction.id,
  handle(fhirTransaction, async (ctx, { fhir }) => {
    const key = ctx.headers.get('idempotency-key');
    if (key !== null && !idempotencyKeySchema.safeParse(key).success)
      throw invalidInput('The Idempotency-Key header is invalid.', [
        { path: '/headers/Idempotency-Key', message: '1-128 visible ASCII characters' },
      ]);
    const result = await fhir.transaction(ctx.tenant, ctx.body, metaOf(ctx), key ?? undefined);
    return {
      status: 200,
      body: result.bundle,
      headers: { ...FHIR_JSON, ...(result.replayed ? { 'Idempotent-Replayed': 'true' } : {}) },
    };
  }),
);

app.http(
  fhirReadServiceRequest.id,
  handle(fhirReadServiceRequest, async (ctx, { fhir }) => ({
    status: 200,
    body: await fhir.serviceRequest(ctx.tenant, ctx.params.id, metaOf(ctx)),
    headers: FHIR_JSON,
  })),
);

app.http(
  fhirSearchServiceRequests.id,
  handle(fhirSearchServiceRequests, async (ctx, { fhir }) => {
    // A token search parameter: `system|value`, `|value` (no system) or `value` (any system).
    const raw = ctx.query.identifier;
    const bar = raw.indexOf('|');
    const identifier = bar < 0 ? { value: raw } : { system: raw.slice(0, bar), value: raw.slice(bar + 1) };
    if (identifier.value === '')
      throw invalidInput('The identifier needs a value.', [{ path: '/identifier', message: 'system|value' }]);
    const found = await fhir.searchServiceRequests(ctx.tenant, identifier, metaOf(ctx));
    return {
      status: 200,
      body: {
        resourceType: 'Bundle',
        type: 'searchset',
        total: found.length,
        entry: found.map((resource) => ({ resource, search: { mode: 'match' } })),
      },
      headers: FHIR_JSON,
    };
  }),
);

app.http(
  fhirReadTask.id,
  handle(fhirReadTask, async (ctx, { fhir }) => ({
    status: 200,
    body: await fhir.task(ctx.tenant, ctx.params.id, metaOf(ctx)),
    headers: FHIR_JSON,
  })),
);

app.http(
  fhirCapabilities.id,
  handle(fhirCapabilities, async () => ({ status: 200, body: capabilityStatement(), headers: FHIR_JSON })),
);
