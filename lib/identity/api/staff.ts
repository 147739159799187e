import { STAFF_GRANT_MAX_MINUTES } from '../access-requests.js';
// The vendor's staff: operator accounts, security alerts, need-to-know access to a tenant.
import { z } from 'zod';
import { defineOperation } from '../../http/operation.js';
import { line, tenantId } from '../../fields.js';
import { GRANTABLE_PERMISSIONS, operatorRoleSchema } from '../permissions.js';
import { usernameSchema, emailSchema } from '../schemas.js';
import { p, common } from './shared.js';
import { userCreatedSchema, userParams } from './users.js';

const operatorCreateSchema = z.strictObject({
  username: usernameSchema,
  email: emailSchema,
  name: line(200).optional(),
  roles: z.array(operatorRoleSchema).min(1),
});

const alertSchema = z
  .object({
    id: z.string(),
    kind: z.string(),
    detectedAt: z.string(),
    realm: z.string().optional(),
    sourceRef: z.string().optional(),
    accountRef: z.string().optional(),
    principal: z.string().optional().describe('The principal an anomaly is about (kind:id)'),
    window: z.object({ from: z.string(), to: z.string() }).optional(),
    baseline: z.number().optional().describe("The principal's usual count per window, or the threshold"),
    count: z.number(),
    summary: z.string(),
  })
  .meta({ id: 'SecurityAlert' });

const accessRequestCreateSchema = z.strictObject({
  tenant: tenantId,
  reason: line(500),
  minutes: z.number().int().min(5).max(STAFF_GRANT_MAX_MINUTES),
  permissions: z.array(z.enum(GRANTABLE_PERMISSIONS as [string, ...string[]])).min(1),
});

const accessRequestSchema = z
  .object({
    id: z.string(),
    tenant: z.string(),
    operatorId: z.string(),
    reason: z.string(),
    minutes: z.number(),
    permissions: z.array(z.string()),
    status: z.enum(['pending', 'approved', 'denied']),
    requestedAt: z.string(),
    decidedAt: z.string().optional(),
    decidedBy: z.string().optional(),
    expiresAt: z.string().optional(),
    revokedAt: z.string().optional(),
  })
  .meta({ id: 'AccessRequest' });

const accessRequestParams = z.strictObject({ id: z.string().regex(/^[0-9a-f]{24}$/) });

export const approvalSchema = z.strictObject({ approve: z.boolean() });

export const createOperator = defineOperation({
  id: 'createOperator',
  method: 'POST',
  route: 'operators',
  tag: 'operators',
  summary: 'Create an operator account (operator-admin)',
  access: { operatorPermission: 'operators:manage' },
  body: operatorCreateSchema,
  responses: { 201: { description: 'Created', schema: userCreatedSchema }, ...common, 409: p('Username taken') },
});

export const unlockOperator = defineOperation({
  id: 'unlockOperator',
  method: 'POST',
  route: 'operators/{id}/unlock',
  tag: 'operators',
  summary: "Unlock another operator's account (never one's own)",
  access: { operatorPermission: 'operators:manage' },
  params: userParams,
  responses: { 204: { description: 'Unlocked' }, ...common, 404: p('Unknown operator') },
});

export const listSecurityAlerts = defineOperation({
  id: 'listSecurityAlerts',
  method: 'GET',
  route: 'security/alerts',
  tag: 'security',
  summary: 'Brute-force, spraying and stuffing detections and anomalies of every realm, newest first',
  access: { operatorPermission: 'security:read' },
  responses: { 200: { description: 'Alerts', schema: z.object({ items: z.array(alertSchema) }) }, ...common },
});

export const listTenantAlerts = defineOperation({
  id: 'listTenantAlerts',
  method: 'GET',
  route: 'alerts',
  tag: 'security',
  summary: "Alerts about the tenant's own principals (read volume, exports, probing, staff grants), newest first",
  access: { permission: 'audit:read' },
  responses: { 200: { description: 'Alerts', schema: z.object({ items: z.array(alertSchema) }) }, ...common },
});

export const runAnomalyScan = defineOperation({
  id: 'runAnomalyScan',
  method: 'POST',
  route: 'security/anomaly-scans',
  tag: 'security',
  summary: "Scan every tenant's audit log for anomalies now (the timer does it every five minutes)",
  access: { operatorPermission: 'security:read' },
  responses: {
    200: { description: 'Alerts raised by this scan', schema: z.object({ items: z.array(alertSchema) }) },
    ...common,
  },
});

export const createAccessRequest = defineOperation({
  id: 'createAccessRequest',
  method: 'POST',
  route: 'access-requests',
  tag: 'staff-access',
  summary: 'An operator asks one tenant for time-boxed access, with a reason',
  access: { operatorPermission: 'access-requests:create' },
  body: accessRequestCreateSchema,
  responses: { 201: { description: 'Requested', schema: accessRequestSchema }, ...common, 404: p('Unknown tenant') },
});

export const listAccessRequests = defineOperation({
  id: 'listAccessRequests',
  method: 'GET',
  route: 'access-requests',
  tag: 'staff-access',
  summary: "The tenant's staff access requests",
  access: { permission: 'access-requests:approve' },
  responses: { 200: { description: 'Requests', schema: z.object({ items: z.array(accessRequestSchema) }) }, ...common },
});

export const decideAccessRequest = defineOperation({
  id: 'decideAccessRequest',
  method: 'POST',
  route: 'access-requests/{id}/approval',
  tag: 'staff-access',
  summary: 'Approve or deny a staff access request',
  access: { permission: 'access-requests:approve' },
  params: accessRequestParams,
  body: approvalSchema,
  responses: {
    200: { description: 'Decided', schema: accessRequestSchema },
    ...common,
    404: p('Unknown request'),
    409: p('Decided already'),
  },
});

export const revokeAccessGrant = defineOperation({
  id: 'revokeAccessGrant',
  method: 'POST',
  route: 'access-requests/{id}/revocation',
  tag: 'staff-access',
  summary: 'End an approved staff grant at once (download links issued under it stop working)',
  access: { permission: 'access-requests:approve' },
  params: accessRequestParams,
  responses: {
    200: { description: 'Revoked', schema: accessRequestSchema },
    ...common,
    404: p('Unknown request'),
    409: p('Not a live grant'),
  },
});

export const staffOperations = [
  createOperator,
  unlockOperator,
  listSecurityAlerts,
  listTenantAlerts,
  runAnomalyScan,
  createAccessRequest,
  listAccessRequests,
  decideAccessRequest,
  revokeAccessGrant,
];
