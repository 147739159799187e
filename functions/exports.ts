import { Readable } from 'node:stream';
import { app, type InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { createExportLink, downloadExport, getExport, startExport } from '../lib/exports/api.js';
import type { RequestMeta } from '../lib/audit/types.js';
import { invalidInput, notFound } from '../lib/errors.js';
import type { ExportRecord, ExportService } from '../lib/exports/exports.js';
import type { Principal } from '../lib/identity/permissions.js';
import { exportInstanceId } from '../orchestrations/export.js';
import { startOrchestration } from './durable.js';
import { attemptOf, handle, metaOf } from './http.js';

const requester = (principal: Principal) => ({
  id: principal.id,
  ...(principal.grant ? { grant: { expiresAt: principal.grant.expiresAt } } : {}),
});

/**
 * Starts the export's orchestration. When the start fails the record is marked failed, which
 * releases the tenant's export lock: a lost start must not block the next export for good.
 */
export async function startExportOrchestration(
  invocation: InvocationContext,
  exports: ExportService,
  tenant: string,
  record: Pick<ExportRecord, 'id' | 'format' | 'purpose'>,
  meta: RequestMeta,
): Promise<void> {
  try {
    await startOrchestration(invocation, 'exportTenantData', exportInstanceId(tenant, record.id), {
      tenant,
      exportId: record.id,
      format: record.format,
      purpose: record.purpose,
    });
  } catch (error) {
    await exports.fail(tenant, record.id, 'the orchestration could not be started', meta).catch(() => undefined);
    throw error;
  }
}

app.http(
  startExport.id,
  handle(
    startExport,
    async (ctx, { auth, exports }) => {
      // The whole tenant's data in one archive: a person confirms with their password, so a stolen
      // access token alone cannot take it. API keys are credentials of their own (created with a
      // password); an operator's staff grant was approved by a second person and ends with its time.
      if (ctx.principal.kind === 'user') {
        if (ctx.body.currentPassword === undefined)
          throw invalidInput('A person starting an export confirms it with their current password.', [
            { path: '/currentPassword', message: 'required when a person starts an export' },
          ]);
        await auth.reauthenticate(ctx.principal, ctx.body.currentPassword, attemptOf(ctx));
      }
      const record = await exports.request(
        ctx.tenant,
        ctx.body.format,
        ctx.body.purpose ?? 'request',
        ctx.principal.id,
        metaOf(ctx),
      );
      await startExportOrchestration(ctx.invocation, exports, ctx.tenant, record, metaOf(ctx));
      // The extension's own management URLs carry the task hub's system key: tenants get this API's URL.
      const location = `/api/exports/${record.id}`;
      return {
        status: 202,
        headers: { Location: location, 'Retry-After': '2' },
        body: { id: record.id, status: record.status, statusQueryGetUri: location },
      };
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
        if (custom?.phase)
          progress = { phase: custom.phase, partsDone: custom.partsDone ?? 0, partsTotal: custom.partsTotal ?? 0 };
      } catch {
        // The instance may be purged; the record still answers.
      }
      const link = record.archive
        ? await exports.downloadLink(ctx.tenant, record.id, requester(ctx.principal), metaOf(ctx))
        : undefined;
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
          ...(record.archive?.summary ? { manifest: record.archive.summary } : {}),
          ...(link && record.archive
            ? {
                download: {
                  url: link.url,
                  expiresAt: link.expiresAt,
                  sha256: record.archive.sha256,
                  bytes: record.archive.bytes,
                },
              }
            : {}),
        },
      };
    },
    { extraInputs: [df.input.durableClient()] },
  ),
);

app.http(
  createExportLink.id,
  handle(createExportLink, async (ctx, { exports }) => {
    const record = await exports.get(ctx.tenant, ctx.params.id);
    const link = record.archive
      ? await exports.downloadLink(ctx.tenant, record.id, requester(ctx.principal), metaOf(ctx))
      : undefined;
    if (!link || !record.archive) throw notFound('No archive of this export is available to you.');
    return {
      status: 201,
      body: { url: link.url, expiresAt: link.expiresAt, sha256: record.archive.sha256, bytes: record.archive.bytes },
    };
  }),
);

app.http(
  downloadExport.id,
  handle(downloadExport, async (ctx, { exports }) => {
    const archive = await exports.openArchive(ctx.tenant, ctx.params.id, ctx.principal.id, metaOf(ctx));
    return {
      status: 200,
      body: Readable.toWeb(Readable.from(archive.stream as AsyncIterable<Buffer>)) as ReadableStream<Uint8Array>,
      // The archive's SHA-256 is its strong entity tag.
      headers: {
        'Content-Type': 'application/zip',
        'Content-Length': String(archive.bytes),
        ETag: `"${archive.sha256}"`,
        'Content-Disposition': `attachment; filename="export-${ctx.params.id}.zip"`,
      },
    };
  }),
);
