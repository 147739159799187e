import { app } from '@azure/functions';
import * as df from 'durable-functions';
import { getExport, startExport } from '../lib/exports/api.js';
import { exportInstanceId } from '../orchestrations/export.js';
import { handle } from './http.js';

app.http(
  startExport.id,
  handle(
    startExport,
    async (ctx, { exports }) => {
      const record = await exports.request(ctx.tenant, ctx.body.format, ctx.body.purpose ?? 'request', ctx.principal.id, { actor: ctx.actor, correlationId: ctx.correlationId });
      const client = df.getClient(ctx.invocation);
      await client.startNew('exportTenantData', {
        instanceId: exportInstanceId(ctx.tenant, record.id),
        input: { tenant: ctx.tenant, exportId: record.id, format: record.format, purpose: record.purpose },
      });
      // The extension's own management URLs carry the task hub's system key: tenants get this API's URL.
      const location = `/api/exports/${record.id}`;
      return { status: 202, headers: { Location: location, 'Retry-After': '2' }, body: { id: record.id, status: record.status, statusQueryGetUri: location } };
    },
    { extraInputs: [df.input.durableClient()] },
  ),
);

app.http(
  getExport.id,
  handle(
    getExport,
    async (ctx, { exports }) => {
      const record = await exports.get(ctx.tenant, ctx.params.id);
      let progress: { phase: string; partsDone: number; partsTotal: number } | undefined;
      try {
        const status = await df.getClient(ctx.invocation).getStatus(exportInstanceId(ctx.tenant, record.id));
        const custom = status.customStatus as { phase?: string; partsDone?: number; partsTotal?: number } | null;
        if (custom?.phase) progress = { phase: custom.phase, partsDone: custom.partsDone ?? 0, partsTotal: custom.partsTotal ?? 0 };
      } catch {
        // The instance may be purged; the record still answers.
      }
      const link = record.archive ? await exports.downloadLink(ctx.tenant, record.id, ctx.principal.id, { actor: ctx.actor, correlationId: ctx.correlationId }) : undefined;
      return {
        status: 200,
        body: {
          id: record.id,
          status: record.status,
          format: record.format,
          purpose: record.purpose,
          ...(progress ? { progress } : {}),
          createdAt: record.createdAt,
          ...(record.completedAt ? { completedAt: record.completedAt } : {}),
          ...(record.archive ? { availableUntil: record.archive.deleteAt } : {}),
          ...(link && record.archive ? { download: { url: link.url, expiresAt: link.expiresAt, sha256: record.archive.sha256, bytes: record.archive.bytes } } : {}),
        },
      };
    },
    { extraInputs: [df.input.durableClient()] },
  ),
);
