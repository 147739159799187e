import { app } from '@azure/functions';
import { buildOpenApiDocument } from '../lib/http/openapi.js';
import { health, openApiDocument } from '../lib/http/platform-api.js';
import { serviceUnavailable } from '../lib/http/problem.js';
import { handle } from './http.js';

app.http(
  health.id,
  handle(health, async (_ctx, { storage }) => {
    try {
      await storage.tableService.getProperties({ abortSignal: AbortSignal.timeout(3000) });
    } catch {
      throw serviceUnavailable(10);
    }
    return { status: 200, body: { status: 'ok', storage: 'ok' } };
  }),
);

let document: Record<string, unknown> | undefined;
app.http(
  openApiDocument.id,
  handle(openApiDocument, async () => {
    document ??= buildOpenApiDocument();
    return { status: 200, body: document };
  }),
);
