import { z } from 'zod';
import { defineOperation, type ResponseSpec } from '../http/operation.js';
import { problemSchema } from '../http/schemas.js';
import { currentPassword } from '../identity/api/shared.js';
import { RATE_LIMITS } from '../identity/rate-limits.js';

const p = (description: string): ResponseSpec => ({ description, schema: problemSchema });

const exportRequestSchema = z
  .strictObject({
    format: z.enum(['ndjson', 'fhir']),
    purpose: z.enum(['request', 'contract-end']).optional(),
    currentPassword: currentPassword
      .optional()
      .describe(
        "The signed-in person's current password (an operator under a staff grant: their own): needed when a person starts an export (a stolen access token alone cannot take the tenant's data); API keys send none",
      ),
  })
  .meta({ id: 'ExportRequest' });

const exportStatusSchema = z
  .object({
    id: z.string(),
    status: z.enum(['pending', 'running', 'completed', 'failed', 'expired']),
    format: z.enum(['ndjson', 'fhir']),
    purpose: z.enum(['request', 'contract-end', 'subject-access']),
    progress: z.object({ phase: z.string(), partsDone: z.number(), partsTotal: z.number() }).optional(),
    createdAt: z.string(),
    completedAt: z.string().optional(),
    availableUntil: z.string().optional(),
    download: z
      .object({ url: z.string().optional(), expiresAt: z.string().optional(), sha256: z.string(), bytes: z.number() })
      .optional()
      .describe(
        "The completed archive's checksum and size, for the requester; `url` and `expiresAt` only for an API key: a person takes the archive with their password (POST /exports/{id}/links or /exports/{id}/archive), so a stolen access token alone takes none",
      ),
    manifest: z
      .object({ files: z.number(), counts: z.record(z.string(), z.number()) })
      .optional()
      .describe("The archive's manifest.json in short: how many files, and records by type"),
  })
  .meta({ id: 'Export' });

export const startExport = defineOperation({
  id: 'startExport',
  method: 'POST',
  route: 'exports',
  tag: 'exports',
  summary: "Export all of the tenant's data (one at a time per tenant)",
  access: { permission: 'exports:start' },
  body: exportRequestSchema,
  rateLimit: RATE_LIMITS.exportStart,
  responses: {
    202: {
      description: 'Started; poll Location',
      schema: z.object({ id: z.string(), status: z.string(), statusQueryGetUri: z.string() }),
    },
    400: p('Malformed request, or a person sent no currentPassword'),
    401: p('Missing or invalid credentials'),
    403: p('Not permitted, or the current password is wrong'),
    409: p(
      "An export of the tenant, or a patient's erasure, is running (a holder whose run has ended is given back first)",
    ),
    429: p('Too many exports started, or too many wrong passwords; see Retry-After'),
  },
});

export const getExport = defineOperation({
  id: 'getExport',
  method: 'GET',
  route: 'exports/{id}',
  tag: 'exports',
  summary:
    'Export status and progress; once completed, the checksum for the requester (and for an API key a fresh download link)',
  access: { permission: 'exports:start' },
  params: z.strictObject({ id: z.string().regex(/^[0-9a-f]{24}$/) }),
  responses: {
    200: {
      description: 'Status (with a download link for an API key once completed)',
      schema: exportStatusSchema,
    },
    401: p('Missing or invalid credentials'),
    403: p('Not permitted'),
    404: p('Unknown export'),
  },
});

const exportParams = z.strictObject({ id: z.string().regex(/^[0-9a-f]{24}$/) });
const passwordConfirmation = z
  .strictObject({
    currentPassword: currentPassword.describe(
      "The signed-in person's current password (a stolen access token alone takes no archive); API keys send no body",
    ),
  })
  .meta({ id: 'ArchiveConfirmation' });
const downloadLinkSchema = z
  .object({ url: z.string(), expiresAt: z.string(), sha256: z.string(), bytes: z.number() })
  .meta({ id: 'DownloadLink' });

export const createExportLink = defineOperation({
  id: 'createExportLink',
  method: 'POST',
  route: 'exports/{id}/links',
  tag: 'exports',
  summary:
    'A new storage link for the requester while the archive exists (24 h at most; a person confirms with their password; not for an operator under a staff grant, whose download must end with the grant)',
  access: { permission: 'exports:start' },
  params: exportParams,
  body: passwordConfirmation,
  bodyOptional: true,
  responses: {
    201: { description: 'Link', schema: downloadLinkSchema },
    400: p('A person sent no currentPassword'),
    401: p('Missing or invalid credentials'),
    403: p('Not permitted, an operator under a staff grant, or the current password is wrong'),
    404: p('Unknown export, not completed, or not the requester'),
    429: p('Too many wrong passwords; see Retry-After'),
  },
});

export const downloadExport = defineOperation({
  id: 'downloadExportArchive',
  method: 'GET',
  route: 'exports/{id}/archive',
  tag: 'exports',
  summary: 'The archive through the API for the API key that requested it; a person uses POST with their password',
  access: { permission: 'exports:start' },
  params: exportParams,
  responses: {
    200: { description: 'The ZIP archive', contentType: 'application/zip' },
    401: p('Missing or invalid credentials'),
    403: p('Not permitted, or a person (who downloads with their password: POST)'),
    404: p('Unknown export or not the requester'),
  },
});

export const downloadExportWithPassword = defineOperation({
  id: 'downloadExportArchiveWithPassword',
  method: 'POST',
  route: 'exports/{id}/archive',
  tag: 'exports',
  summary:
    'The archive through the API for the person who requested it, confirmed with their password (what the console downloads and checks; an operator under a staff grant, only while the grant lives)',
  access: { permission: 'exports:start' },
  params: exportParams,
  body: passwordConfirmation,
  responses: {
    200: { description: 'The ZIP archive', contentType: 'application/zip' },
    400: p('Malformed request'),
    401: p('Missing or invalid credentials'),
    403: p('Not permitted, not a person, or the current password is wrong'),
    404: p('Unknown export or not the requester'),
    429: p('Too many wrong passwords; see Retry-After'),
  },
});

export const exportOperations = [startExport, getExport, createExportLink, downloadExport, downloadExportWithPassword];
