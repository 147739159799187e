import { z } from 'zod';
import { defineOperation, type ResponseSpec } from '../http/operation.js';
import { approvalSchema } from '../approvals/api.js';
import { line, tenantId } from '../fields.js';
import { problemSchema } from '../http/schemas.js';

const p = (description: string): ResponseSpec => ({ description, schema: problemSchema });
const common = { 400: p('Malformed request'), 401: p('Missing or invalid credentials'), 403: p('Not permitted') };
const days = z.number().int().min(1).max(36500);

const policySchema = z
  .strictObject({
    imagesDays: days,
    ordersDays: days,
    afterContractEndDays: z.number().int().min(1).max(3650),
    legalDuty: z
      .strictObject({ days, basis: line(200) })
      .optional()
      .describe(
        "A duty to keep records (e.g. 3650 days, §630f(3) BGB): a data subject's erasure of younger orders is refused",
      ),
  })
  .meta({ id: 'RetentionPolicy' });
const boundsSchema = z
  .strictObject({
    minOrdersDays: days,
    maxOrdersDays: days,
    minImagesDays: days,
    maxImagesDays: days,
    minAfterContractEndDays: z.number().int().min(30).max(3650),
    maxAfterContractEndDays: z.number().int().min(30).max(3650),
  })
  .meta({ id: 'RetentionBounds' });
const tenantParams = z.strictObject({ id: tenantId });
const reasonQuery = z.strictObject({ reason: line(500).optional() });

const deletionStateSchema = z
  .object({
    tenant: z.string(),
    status: z.enum(['scheduled', 'on-hold', 'deleting', 'completed', 'withdrawn', 'not-terminated']),
    deleteAt: z.string().nullable(),
    contractEndsAt: z.string().nullable(),
    recordedAt: z.string().nullable(),
    noticeEndsAt: z.string().nullable(),
    legalHold: z.boolean(),
    confirmedAt: z.string().optional(),
    withdrawnAt: z.string().optional(),
    startedAt: z.string().optional(),
    progress: z.object({ phase: z.string() }).catchall(z.unknown()).optional(),
    certificate: z.object({ certificate: z.record(z.string(), z.unknown()), jws: z.string() }).optional(),
  })
  .meta({ id: 'TenantDeletion' });

export const getRetention = defineOperation({
  id: 'getRetention',
  method: 'GET',
  route: 'retention',
  tag: 'retention',
  summary: "The tenant's retention policy and the bounds it must stay within",
  access: { permission: 'retention:manage' },
  responses: {
    200: { description: 'Policy and bounds', schema: z.object({ policy: policySchema, bounds: boundsSchema }) },
    ...common,
  },
});

export const putRetention = defineOperation({
  id: 'putRetention',
  method: 'PUT',
  route: 'retention',
  tag: 'retention',
  summary: 'Set the retention policy (images never outlive their order)',
  access: { permission: 'retention:manage' },
  body: policySchema,
  responses: { 200: { description: 'Policy', schema: policySchema }, ...common, 422: p('Outside the bounds') },
});

export const getNotices = defineOperation({
  id: 'getTenantNotices',
  method: 'GET',
  route: 'notices',
  tag: 'retention',
  summary: 'Notices to the tenant (e.g. the deletion date at contract end)',
  access: { permission: 'retention:manage' },
  responses: {
    200: {
      description: 'Notices',
      schema: z.object({ items: z.array(z.object({ kind: z.string(), text: z.string(), at: z.string() })) }),
    },
    ...common,
  },
});

export const putBounds = defineOperation({
  id: 'putRetentionBounds',
  method: 'PUT',
  route: 'tenants/{id}/retention-bounds',
  tag: 'tenants',
  summary: "Set the bounds of a tenant's retention policy (e.g. legal minimums)",
  access: { operatorPermission: 'tenants:manage' },
  params: tenantParams,
  body: boundsSchema,
  responses: {
    200: { description: 'Bounds raised or unchanged: applied', schema: boundsSchema },
    202: { description: 'Bounds lowered: waits for a second operator (four-eyes)', schema: approvalSchema },
    ...common,
    404: p('Unknown tenant'),
    422: p('Inconsistent'),
  },
});

export const terminate = defineOperation({
  id: 'terminateTenant',
  method: 'POST',
  route: 'tenants/{id}/termination',
  tag: 'tenants',
  summary:
    'Contract end: schedules the deletion no earlier than the notice period from now (notice, export window, legal hold honoured)',
  access: { operatorPermission: 'tenants:manage' },
  params: tenantParams,
  body: z.strictObject({ contractEndsAt: z.iso.datetime({ offset: true }) }),
  responses: {
    202: {
      description: 'Scheduled',
      schema: z.object({ deleteAt: z.string(), noticeEndsAt: z.string(), statusQueryGetUri: z.string() }),
    },
    ...common,
    404: p('Unknown tenant'),
    409: p('A termination is in force already, or deletion running or done'),
  },
});

export const withdrawTermination = defineOperation({
  id: 'withdrawTermination',
  method: 'DELETE',
  route: 'tenants/{id}/termination',
  tag: 'tenants',
  summary: 'Withdraw a termination before deletion starts (the tenant is told)',
  access: { operatorPermission: 'tenants:manage' },
  params: tenantParams,
  responses: {
    204: { description: 'Withdrawn' },
    ...common,
    404: p('No termination recorded'),
    409: p('Deletion running or done'),
  },
});

export const confirmDeletion = defineOperation({
  id: 'confirmEarlyDeletion',
  method: 'POST',
  route: 'tenants/{id}/deletion/confirmation',
  tag: 'tenants',
  summary: "The tenant's own admin confirms deletion before its date (the controller's decision); it starts at once",
  access: { permission: 'retention:manage' },
  params: tenantParams,
  body: z.strictObject({ currentPassword: z.string().min(1).max(1024) }),
  responses: {
    202: { description: 'Deletion starts', schema: z.object({ deleteAt: z.string(), statusQueryGetUri: z.string() }) },
    ...common,
    404: p('Not your tenant'),
    409: p('No termination, a legal hold, or deletion running or done'),
    429: p('Too many wrong passwords'),
  },
});

export const setHold = defineOperation({
  id: 'setLegalHold',
  method: 'POST',
  route: 'tenants/{id}/legal-hold',
  tag: 'tenants',
  summary: "Pause the tenant's deletion (legal hold)",
  access: { operatorPermission: 'tenants:manage' },
  params: tenantParams,
  responses: { 204: { description: 'Held' }, ...common, 404: p('Unknown tenant'), 409: p('Deletion running or done') },
});

export const liftHold = defineOperation({
  id: 'liftLegalHold',
  method: 'DELETE',
  route: 'tenants/{id}/legal-hold',
  tag: 'tenants',
  summary: "Ask to lift the tenant's legal hold: runs once a second operator approves (four-eyes)",
  access: { operatorPermission: 'tenants:manage' },
  params: tenantParams,
  query: reasonQuery,
  responses: {
    202: { description: 'Requested; waits for a second operator', schema: approvalSchema },
    ...common,
    404: p('Unknown tenant'),
    409: p('Deletion running or done'),
  },
});

export const getDeletion = defineOperation({
  id: 'getTenantDeletion',
  method: 'GET',
  route: 'tenants/{id}/deletion',
  tag: 'tenants',
  summary: 'Deletion status, date, and the signed certificate once completed',
  access: { operatorPermission: 'tenants:manage' },
  params: tenantParams,
  responses: {
    200: { description: 'Status', schema: deletionStateSchema },
    ...common,
    404: p('No deletion scheduled'),
  },
});

export const certificateKeys = defineOperation({
  id: 'deletionCertificateKeys',
  method: 'GET',
  route: 'deletion-certificates/keys',
  tag: 'tenants',
  summary: 'The public keys (JWKS) that verify deletion certificates',
  access: 'public',
  responses: { 200: { description: 'JWKS', schema: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }) } },
});

export const retentionOperations = [
  getRetention,
  putRetention,
  getNotices,
  putBounds,
  terminate,
  withdrawTermination,
  confirmDeletion,
  setHold,
  liftHold,
  getDeletion,
  certificateKeys,
];
