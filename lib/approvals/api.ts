import { z } from 'zod';
import { defineOperation, type ResponseSpec } from '../http/operation.js';
import { problemSchema } from '../http/schemas.js';
import { APPROVAL_KINDS } from './approvals.js';

const p = (description: string): ResponseSpec => ({ description, schema: problemSchema });
const common = { 400: p('Malformed request'), 401: p('Missing or invalid credentials'), 403: p('Not permitted') };

export const approvalSchema = z
  .object({
    id: z.string(),
    kind: z.enum(Object.keys(APPROVAL_KINDS) as [keyof typeof APPROVAL_KINDS, ...(keyof typeof APPROVAL_KINDS)[]]),
    summary: z.string(),
    target: z.string(),
    tenant: z.string().optional(),
    params: z.record(z.string(), z.unknown()),
    reason: z.string(),
    requestedBy: z.string(),
    requestedAt: z.string(),
    expiresAt: z.string(),
    status: z.enum(['pending', 'executed', 'denied', 'expired', 'failed']),
    decidedBy: z.string().optional(),
    decidedAt: z.string().optional(),
    failure: z.string().optional(),
  })
  .meta({ id: 'Approval' });

const approvalParams = z.strictObject({ id: z.string().regex(/^[0-9a-f]{24}$/) });

export const listApprovals = defineOperation({
  id: 'listApprovals',
  method: 'GET',
  route: 'approvals',
  tag: 'approvals',
  summary: 'Four-eyes requests of operators (newest first)',
  access: 'operator',
  query: z.strictObject({ status: z.enum(['pending', 'executed', 'denied', 'expired', 'failed']).optional() }),
  responses: { 200: { description: 'Requests', schema: z.object({ items: z.array(approvalSchema) }) }, ...common },
});

export const getApproval = defineOperation({
  id: 'getApproval',
  method: 'GET',
  route: 'approvals/{id}',
  tag: 'approvals',
  summary: 'One four-eyes request',
  access: 'operator',
  params: approvalParams,
  responses: { 200: { description: 'Request', schema: approvalSchema }, ...common, 404: p('Unknown request') },
});

export const decideApproval = defineOperation({
  id: 'decideApproval',
  method: 'POST',
  route: 'approvals/{id}/decision',
  tag: 'approvals',
  summary: 'A second operator approves (the action runs at once) or denies a request; never the requester',
  access: 'operator',
  params: approvalParams,
  body: z.strictObject({ approve: z.boolean() }),
  responses: {
    200: { description: 'Decided (executed or denied)', schema: approvalSchema },
    ...common,
    404: p('Unknown request'),
    409: p('Decided already, or expired'),
  },
});

export const approvalOperations = [listApprovals, getApproval, decideApproval];
