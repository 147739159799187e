import { app } from '@azure/functions';
import { buildOpenApiDocument } from '../lib/http/openapi.js';
import { health, openApiDocument } from '../lib/http/platform-api.js';
import { checkStorageHealth } from '../lib/storage/health.js';
import { handle } from './http.js';

app.http(
  health.id,
  handle(health, async (_ctx, { storage }) => ({ status: 200, body: await checkStorageHealth(storage) })),
);

let document: Record<string, unknown> | undefined;
app.http(
  openApiDocument.id,
  handle(openApiDocument, async () => {
    document ??= buildOpenApiDocument();
    return { status: 200, body: document };
  }),
);
