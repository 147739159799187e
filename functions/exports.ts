import { Readable } from 'node:stream';
import { app, type InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import {
  createExportLink,
  downloadExport,
  downloadExportWithPassword,
  getExport,
  startExport,
} from '../lib/exports/api.js';
import type { RequestMeta } from '../lib/audit/types.js';
import { forbidden, invalidInput, notFound } from '../lib/errors.js';
import type { AuthService } from '../lib/identity/auth.js';
import { type ExportRecord, type ExportService, ExportLockHeldError } from '../lib/exports/exports.js';
import type { Principal } from '../lib/identity/permissions.js';
import { reclaimExportLock } from '../orchestrations/export-lock.js';
import { exportInstanceId } from '../orchestrations/instance-ids.js';
import { startOrchestration } from './durable.js';
import { attemptOf, handle, metaOf } from './http.js';

/** A person (a tenant's user, or an operator under a staff grant), not an API key. */
export const isPerson = (principal: Principal) => principal.kind !== 'integration';

/**
 * The tenant's data leaves only with a person's password: a stolen access token alone neither starts
 * an export nor takes an archive, whether it is a tenant user's or an operator's under a staff grant.
 * API keys are credentials of their own, created by a person with their password.
 */
export async function confirmPerson(
  ctx: { principal: Principal; clientAddress: string | undefined; correlationId: string },
  auth: AuthService,
  currentPassword: string | undefined,
  action: string,
): Promise<void> {
  if (!isPerson(ctx.principal)) return;
  if (currentPassword === undefined)
    throw invalidInput(`A person who ${action} confirms it with their current password.`, [
      { path: '/currentPassword', message: `required when a person ${action}` },
    ]);
  await auth.confirmPassword(ctx.principal, currentPassword, attemptOf(ctx));
}

/** The requester's archive while it is kept: what a download link or the archive route hands out. */
const archiveFor = (record: ExportRecord, principal: Principal) =>
  record.status === 'completed' && record.requestedBy === principal.id ? record.archive : undefined;

/** The same, or 404 first: whoever did not request it learns nothing more about it (not even a 403). */
function requestersArchive(record: ExportRecord, principal: Principal): NonNullable<ExportRecord['archive']> {
  const archive = archiveFor(record, principal);
  if (!archive) throw notFound('No archive of this export is available to you.');
  return archive;
}

export async function archiveResponse(
  exports: ExportService,
  tenant: string,
  id: string,
  principal: Principal,
  meta: RequestMeta,
) {
  const archive = await exports.openArchive(tenant, id, principal.id, meta);
  return {
    status: 200,
    body: Readable.toWeb(Readable.from(archive.stream as AsyncIterable<Buffer>)) as ReadableStream<Uint8Array>,
    // The archive's SHA-256 is its strong entity tag.
    headers: {
      'Content-Type': 'application/zip',
      'Content-Length': String(archive.bytes),
      ETag: `"${archive.sha256}"`,
      'Content-Disposition': `attachment; filename="export-${id}.zip"`,
    },
  };
}

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
    async (ctx, { auth, exports, subjects }) => {
      await confirmPerson(ctx, auth, ctx.body.currentPassword, 'starts an export');
      const request = () =>
        exports.request(ctx.tenant, ctx.body.format, ctx.body.purpose ?? 'request', ctx.principal.id, metaOf(ctx));
      const record = await request().catch(async (error: unknown) => {
        // A lock whose holder's run has ended is given back, once; a live one answers 409.
        if (!(error instanceof ExportLockHeldError)) throw error;
        const client = df.getClient(ctx.invocation);
        if (!(await reclaimExportLock(client, { exports, subjects }, ctx.tenant, metaOf(ctx)))) throw error;
        return request();
      });
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
      // A person's archive comes with their password (POST …/links or …/archive); here only the checksum.
      const archive = archiveFor(record, ctx.principal);
      const link =
        archive && !isPerson(ctx.principal)
          ? await exports.downloadLink(ctx.tenant, record.id, ctx.principal.id, metaOf(ctx))
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
          ...(archive
            ? {
                download: {
                  ...(link ? { url: link.url, expiresAt: link.expiresAt } : {}),
                  sha256: archive.sha256,
                  bytes: archive.bytes,
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
  handle(createExportLink, async (ctx, { auth, exports }) => {
    const record = await exports.get(ctx.tenant, ctx.params.id);
    const archive = requestersArchive(record, ctx.principal);
    // A storage link cannot be revoked before it expires: an operator's download must end with the grant.
    if (ctx.principal.grant)
      throw forbidden(
        'An operator under a staff grant downloads through POST /exports/{id}/archive with their password.',
      );
    // An optional body (API keys send none), as the operation declares.
    const confirmation = ctx.body as { currentPassword: string } | undefined;
    await confirmPerson(ctx, auth, confirmation?.currentPassword, 'takes a download link');
    const link = await exports.downloadLink(ctx.tenant, record.id, ctx.principal.id, metaOf(ctx));
    if (!link) throw notFound('No archive of this export is available to you.');
    return {
      status: 201,
      body: { url: link.url, expiresAt: link.expiresAt, sha256: archive.sha256, bytes: archive.bytes },
    };
  }),
);

app.http(
  downloadExport.id,
  handle(downloadExport, async (ctx, { exports }) => {
    requestersArchive(await exports.get(ctx.tenant, ctx.params.id), ctx.principal);
    if (isPerson(ctx.principal))
      throw forbidden('A person downloads with their current password: POST to this URL, or take a link.');
    return archiveResponse(exports, ctx.tenant, ctx.params.id, ctx.principal, metaOf(ctx));
  }),
);

app.http(
  downloadExportWithPassword.id,
  handle(downloadExportWithPassword, async (ctx, { auth, exports }) => {
    requestersArchive(await exports.get(ctx.tenant, ctx.params.id), ctx.principal);
    if (!isPerson(ctx.principal))
      throw forbidden('This download is for a person with their password; an API key uses GET or its link.');
    await confirmPerson(ctx, auth, ctx.body.currentPassword, 'downloads an archive');
    return archiveResponse(exports, ctx.tenant, ctx.params.id, ctx.principal, metaOf(ctx));
  }),
);
