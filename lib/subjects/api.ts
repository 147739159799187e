import { z } from 'zod';
import { line } from '../fields.js';
import { defineOperation, type ResponseSpec } from '../http/operation.js';
import { problemSchema } from '../http/schemas.js';
import { currentPassword } from '../identity/api/shared.js';
import { RATE_LIMITS } from '../identity/rate-limits.js';

const p = (description: string): ResponseSpec => ({ description, schema: problemSchema });
const common = { 400: p('Malformed request'), 401: p('Missing or invalid credentials'), 403: p('Not permitted') };
const access = { permission: 'subject-requests:manage' } as const;
const params = z.strictObject({ id: z.string().regex(/^[0-9a-f]{24}$/) });
/**
 * A person's current password in the request: what an archive, an erasure's confirmation and its
 * retry ask, so a stolen access token alone neither takes a subject's data nor destroys it.
 */
const passwordConfirmation = z.strictObject({ currentPassword }).meta({ id: 'SubjectRequestConfirmation' });
/** The patient identifier travels in bodies only: never in a URL, where logs and proxies keep it. */
const patientId = line(64).describe("The data subject's patient identifier, as in the orders");

const subjectRequestSchema = z
  .object({
    id: z.string(),
    type: z.enum(['access', 'erasure', 'restriction']),
    status: z.enum([
      'running',
      'completed',
      'failed',
      'awaiting-confirmation',
      'scheduled',
      'erasing',
      'refused',
      'cancelled',
      'active',
      'lifted',
    ]),
    receivedAt: z.string(),
    dueAt: z.string().describe('One month after receipt (Art. 12(3) GDPR)'),
    requestedBy: z.string(),
    completedAt: z.string().optional(),
    exportId: z.string().optional().describe('Access: the export (status and manifest at /api/exports/{id})'),
    format: z.enum(['ndjson', 'fhir']).optional(),
    confirmedBy: z.string().optional(),
    executeAt: z.string().optional().describe('Erasure: when it runs unless cancelled before'),
    cancelledBy: z.string().optional(),
    failedAt: z
      .string()
      .optional()
      .describe('Erasure: when its run gave up (storage failing past every retry); POST …/retry runs it again'),
    retriedBy: z.string().optional(),
    refusal: z.string().optional(),
    liftedBy: z.string().optional(),
    liftedAt: z.string().optional(),
    evidence: z.record(z.string(), z.number()).optional(),
    archive: z
      .object({ sha256: z.string(), bytes: z.number(), availableUntil: z.string() })
      .optional()
      .describe(
        'Access: the archive while it is kept; the person who made the request takes it with POST /subject-requests/{id}/archive and their password',
      ),
    certificate: z.object({ certificate: z.record(z.string(), z.unknown()), jws: z.string() }).optional(),
  })
  .meta({ id: 'SubjectRequest' });

const inventorySchema = z
  .object({
    orders: z.array(z.object({ id: z.string(), status: z.string(), createdAt: z.string(), restricted: z.boolean() })),
    images: z.array(
      z.object({
        id: z.string(),
        orderId: z.string(),
        specimenId: z.string(),
        status: z.string(),
        createdAt: z.string(),
      }),
    ),
    auditEntries: z.object({
      total: z.number(),
      latest: z.array(
        z.object({
          event: z.string(),
          action: z.string(),
          at: z.string(),
          actor: z.object({ type: z.string(), id: z.string(), address: z.string().optional() }),
          entity: z.object({ type: z.string(), id: z.string() }),
          stream: z.string(),
          seq: z.number(),
        }),
      ),
    }),
    requests: z.array(subjectRequestSchema),
  })
  .meta({ id: 'SubjectInventory' });

export const searchSubject = defineOperation({
  id: 'searchSubject',
  method: 'POST',
  route: 'subject-requests/search',
  tag: 'subject-requests',
  summary:
    'Everything held about one data subject (orders, images, audit entries, earlier requests), found by pseudonym',
  access,
  body: z.strictObject({ patientId }).meta({ id: 'SubjectSearch' }),
  rateLimit: RATE_LIMITS.subjectRequests,
  responses: { 200: { description: 'The inventory', schema: inventorySchema }, ...common, 429: p('Too many searches') },
});

export const createSubjectRequest = defineOperation({
  id: 'createSubjectRequest',
  method: 'POST',
  route: 'subject-requests',
  tag: 'subject-requests',
  summary:
    "A data subject's request: access (an export of just that subject), erasure (confirmed by a second person, run after a window) or restriction",
  access,
  body: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('access'), patientId, format: z.enum(['ndjson', 'fhir']).default('fhir') }),
      z.strictObject({ type: z.literal('erasure'), patientId }),
      z.strictObject({ type: z.literal('restriction'), patientId }),
    ])
    .meta({ id: 'SubjectRequestInput' }),
  rateLimit: RATE_LIMITS.subjectRequests,
  responses: {
    201: { description: 'Recorded (a restriction is in force at once)', schema: subjectRequestSchema },
    202: { description: 'Access export started, or erasure awaiting its confirmation', schema: subjectRequestSchema },
    ...common,
    409: p('Refused with the reason (a legal hold, a duty to keep records), or a restriction stands already'),
    429: p('Too many requests'),
  },
});

export const listSubjectRequests = defineOperation({
  id: 'listSubjectRequests',
  method: 'GET',
  route: 'subject-requests',
  tag: 'subject-requests',
  summary: 'The request log: type, dates, due date, status and evidence of every request',
  access,
  responses: {
    200: { description: 'Requests, newest first', schema: z.object({ items: z.array(subjectRequestSchema) }) },
    ...common,
  },
});

export const getSubjectRequest = defineOperation({
  id: 'getSubjectRequest',
  method: 'GET',
  route: 'subject-requests/{id}',
  tag: 'subject-requests',
  summary: 'One request (an access request answers its export status; an erasure its certificate once done)',
  access,
  params,
  responses: {
    200: { description: 'The request', schema: subjectRequestSchema },
    ...common,
    404: p('Unknown request'),
  },
});

export const confirmSubjectErasure = defineOperation({
  id: 'confirmSubjectErasure',
  method: 'POST',
  route: 'subject-requests/{id}/confirmation',
  tag: 'subject-requests',
  summary: 'A second person confirms an erasure with their password; it runs once the cancellation window is over',
  access,
  params,
  body: passwordConfirmation,
  responses: {
    202: { description: 'Scheduled (see executeAt)', schema: subjectRequestSchema },
    ...common,
    403: p('Not permitted, the requester, not a person, or the current password is wrong'),
    404: p('Unknown erasure request'),
    409: p('Not awaiting confirmation, or refused now (the reason says why)'),
    429: p('Too many wrong passwords'),
  },
});

export const cancelSubjectErasure = defineOperation({
  id: 'cancelSubjectErasure',
  method: 'POST',
  route: 'subject-requests/{id}/cancellation',
  tag: 'subject-requests',
  summary: 'Cancels an erasure before it runs',
  access,
  params,
  responses: {
    200: { description: 'Cancelled', schema: subjectRequestSchema },
    ...common,
    404: p('Unknown erasure request'),
    409: p('Running or done: too late to cancel'),
  },
});

export const retrySubjectErasure = defineOperation({
  id: 'retrySubjectErasure',
  method: 'POST',
  route: 'subject-requests/{id}/retry',
  tag: 'subject-requests',
  summary:
    'Runs a failed erasure again, with the password of the person who does (the confirmed decision stands: no new confirmation, no new window); it waits while a tenant export runs',
  access,
  params,
  body: passwordConfirmation,
  responses: {
    202: {
      description: 'Running again (erasing; or scheduled for the rest of its window if it failed before it began)',
      schema: subjectRequestSchema,
    },
    ...common,
    403: p('Not permitted, not a person, or the current password is wrong'),
    404: p('Unknown erasure request'),
    409: p('Not failed, or refused now (a legal hold or a duty to keep records; the reason says why)'),
    429: p('Too many wrong passwords'),
  },
});

export const liftSubjectRestriction = defineOperation({
  id: 'liftSubjectRestriction',
  method: 'POST',
  route: 'subject-requests/{id}/lift',
  tag: 'subject-requests',
  summary: "Lifts a restriction: the subject's orders are writable and listed again",
  access,
  params,
  responses: {
    200: { description: 'Lifted', schema: subjectRequestSchema },
    ...common,
    404: p('Unknown restriction'),
    409: p('Lifted already'),
  },
});

export const downloadSubjectAccessArchive = defineOperation({
  id: 'downloadSubjectAccessArchive',
  method: 'POST',
  route: 'subject-requests/{id}/archive',
  tag: 'subject-requests',
  summary:
    "An access request's archive for the person who made it, confirmed with their password (no exports permission needed: answering the subject is this duty's)",
  access,
  params,
  body: passwordConfirmation,
  responses: {
    200: {
      description: "The ZIP archive (its SHA-256 is the ETag and the request's archive.sha256)",
      contentType: 'application/zip',
    },
    ...common,
    403: p('Not permitted, not a person, or the current password is wrong'),
    404: p('Unknown access request, its archive not (or no longer) there, or not the requester'),
    429: p('Too many wrong passwords; see Retry-After'),
  },
});

export const subjectRequestOperations = [
  searchSubject,
  createSubjectRequest,
  listSubjectRequests,
  getSubjectRequest,
  confirmSubjectErasure,
  cancelSubjectErasure,
  retrySubjectErasure,
  liftSubjectRestriction,
  downloadSubjectAccessArchive,
];
