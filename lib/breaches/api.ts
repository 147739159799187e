import { z } from 'zod';
import { defineOperation, type ResponseSpec } from '../http/operation.js';
import { freeText, line, tenantId } from '../fields.js';
import { problemSchema } from '../http/schemas.js';

const p = (description: string): ResponseSpec => ({ description, schema: problemSchema });
const common = { 400: p('Malformed request'), 401: p('Missing or invalid credentials'), 403: p('Not permitted') };
const id = z.strictObject({ id: z.string().regex(/^[0-9a-f]{24}$/) });
const natures = z.array(z.enum(['confidentiality', 'integrity', 'availability'])).min(1);
/** The risk to the data subjects' rights and freedoms as assessed now (Art. 33(1), 34(1)). */
const risk = z.enum(['unlikely', 'risk', 'high-risk']);

const breachInputSchema = z
  .strictObject({
    detectedAt: z.iso.datetime({ offset: true }),
    description: freeText(4000),
    tenants: z.array(tenantId).min(1).max(1000).optional(),
    suspectedPrincipal: line(128).optional(),
    window: z.strictObject({ from: z.iso.datetime({ offset: true }), to: z.iso.datetime({ offset: true }) }).optional(),
    nature: natures.default(['confidentiality']),
    dataCategories: z.array(line(100)).min(1).max(30),
    likelyConsequences: freeText(4000),
    measures: freeText(4000),
    keysExposed: z.boolean().default(false),
    risk: risk.optional(),
  })
  .refine((b) => b.tenants !== undefined || b.suspectedPrincipal !== undefined, {
    message: 'give the affected tenants, or a suspected principal to derive them from the audit logs',
  })
  .meta({ id: 'BreachReport' });

const breachUpdateSchema = z
  .strictObject({
    description: freeText(4000).optional(),
    nature: natures.optional(),
    dataCategories: z.array(line(100)).min(1).max(30).optional(),
    likelyConsequences: freeText(4000).optional(),
    measures: freeText(4000).optional(),
    risk: risk.optional(),
    moreToFollow: z.boolean(),
    lateReason: freeText(1000).optional(),
  })
  .meta({ id: 'BreachUpdate' });

const analysisSchema = z
  .strictObject({
    rootCause: freeText(8000),
    measures: freeText(8000),
    lessons: freeText(8000).optional(),
    closed: z.boolean(),
  })
  .meta({ id: 'BreachAnalysis' });
const authorityNotificationSchema = z
  .strictObject({
    authority: line(200),
    reference: line(200),
    notifiedAt: z.iso.datetime({ offset: true }),
  })
  .meta({ id: 'AuthorityNotification' });
const decisionSchema = z.strictObject({ notify: z.literal(false), reasoning: freeText(4000) });
const webhookSchema = z.strictObject({ url: z.url().max(2000) });

export const reportBreach = defineOperation({
  id: 'reportBreach',
  method: 'POST',
  route: 'breaches',
  tag: 'breaches',
  summary: 'Record a breach and start notifying the affected tenants',
  access: { operatorPermission: 'breaches:manage' },
  body: breachInputSchema,
  responses: {
    202: { description: 'Recorded; notification started', schema: z.object({ id: z.string() }) },
    ...common,
    422: p('Unknown tenant'),
  },
});

export const listBreaches = defineOperation({
  id: 'listBreaches',
  method: 'GET',
  route: 'breaches',
  tag: 'breaches',
  summary: 'The breach register',
  access: { operatorPermission: 'breaches:manage' },
  responses: {
    200: { description: 'Breaches', schema: z.object({ items: z.array(z.record(z.string(), z.unknown())) }) },
    ...common,
  },
});

export const getBreach = defineOperation({
  id: 'getBreach',
  method: 'GET',
  route: 'breaches/{id}',
  tag: 'breaches',
  summary: 'Timeline, affected tenants and counts, deadlines, notification and acknowledgement state',
  access: { operatorPermission: 'breaches:manage' },
  params: id,
  responses: {
    200: { description: 'Breach', schema: z.record(z.string(), z.unknown()) },
    ...common,
    404: p('Unknown breach'),
  },
});

export const updateBreach = defineOperation({
  id: 'updateBreach',
  method: 'POST',
  route: 'breaches/{id}/updates',
  tag: 'breaches',
  summary: 'A phased update: the same tenants get the next notification',
  access: { operatorPermission: 'breaches:manage' },
  params: id,
  body: breachUpdateSchema,
  responses: {
    202: { description: 'Update sent', schema: z.object({ sequence: z.number() }) },
    ...common,
    404: p('Unknown breach'),
    409: p('Not open'),
  },
});

export const recordAnalysis = defineOperation({
  id: 'recordBreachAnalysis',
  method: 'POST',
  route: 'breaches/{id}/analysis',
  tag: 'breaches',
  summary: 'Record the internal analysis; with closed: true the breach closes',
  access: { operatorPermission: 'breaches:manage' },
  params: id,
  body: analysisSchema,
  responses: { 204: { description: 'Recorded' }, ...common, 404: p('Unknown breach'), 409: p('Closed') },
});

export const recordAuthorityNotification = defineOperation({
  id: 'recordBreachAuthorityNotification',
  method: 'PUT',
  route: 'breaches/{id}/authority-notification',
  tag: 'breaches',
  summary:
    "Record the supervisory authority's notification of this breach (who, their reference, when), where the vendor notifies as controller of its own data or a controller passes its reference on",
  access: { operatorPermission: 'breaches:manage' },
  params: id,
  body: authorityNotificationSchema,
  responses: { 204: { description: 'Recorded' }, ...common, 404: p('Unknown breach'), 409: p('A draft') },
});

export const confirmDraft = defineOperation({
  id: 'confirmBreachDraft',
  method: 'POST',
  route: 'breaches/{id}/confirmation',
  tag: 'breaches',
  summary: 'Confirm a draft: notification starts',
  access: { operatorPermission: 'breaches:manage' },
  params: id,
  responses: { 202: { description: 'Started' }, ...common, 404: p('Unknown breach'), 409: p('Not a draft') },
});

export const decideBreach = defineOperation({
  id: 'decideBreach',
  method: 'POST',
  route: 'breaches/{id}/decision',
  tag: 'breaches',
  summary: 'Close a draft without notification, with the reasoning (kept in the register)',
  access: { operatorPermission: 'breaches:manage' },
  params: id,
  body: decisionSchema,
  responses: { 204: { description: 'Recorded' }, ...common, 404: p('Unknown breach'), 409: p('Not a draft') },
});

export const draftFromAlert = defineOperation({
  id: 'draftBreachFromAlert',
  method: 'POST',
  route: 'security/alerts/{alertId}/breach-draft',
  tag: 'breaches',
  summary: 'Turn a security alert into a breach draft (never notified automatically)',
  access: { operatorPermission: 'breaches:manage' },
  params: z.strictObject({ alertId: z.string().regex(/^[0-9a-f]{16}$/) }),
  responses: {
    201: { description: 'Draft', schema: z.object({ id: z.string() }) },
    ...common,
    404: p('Unknown alert'),
  },
});

export const listNotifications = defineOperation({
  id: 'listBreachNotifications',
  method: 'GET',
  route: 'breach-notifications',
  tag: 'breaches',
  summary: "The tenant's breach notifications",
  access: { permission: 'breaches:acknowledge' },
  responses: {
    200: { description: 'Notifications', schema: z.object({ items: z.array(z.record(z.string(), z.unknown())) }) },
    ...common,
  },
});

export const acknowledgeNotification = defineOperation({
  id: 'acknowledgeBreachNotification',
  method: 'POST',
  route: 'breach-notifications/{id}/acknowledgement',
  tag: 'breaches',
  summary:
    'Acknowledge a notification (the id GET /api/breach-notifications gives it) and the earlier ones of its breach; stops reminders for this tenant',
  access: { permission: 'breaches:acknowledge' },
  params: z.strictObject({ id: z.string().regex(/^[0-9a-f]{24}-\d{1,4}$/) }),
  responses: { 204: { description: 'Acknowledged' }, ...common, 404: p('Unknown notification') },
});

export const resendDeliveries = defineOperation({
  id: 'resendBreachDeliveries',
  method: 'POST',
  route: 'breaches/{id}/deliveries',
  tag: 'breaches',
  summary: "Deliver each tenant's latest notification to its webhook again (all affected tenants, or those named)",
  access: { operatorPermission: 'breaches:manage' },
  params: id,
  body: z.strictObject({ tenants: z.array(tenantId).min(1).max(1000).optional() }),
  responses: {
    202: {
      description: 'Deliveries started',
      schema: z.object({ deliveries: z.array(z.object({ tenant: z.string(), sequence: z.number() })) }),
    },
    ...common,
    404: p('Unknown breach'),
    422: p('Not a tenant of this breach'),
  },
});

export const setBreachWebhook = defineOperation({
  id: 'setBreachWebhook',
  method: 'PUT',
  route: 'breach-webhook',
  tag: 'breaches',
  summary:
    'Where breach notifications and reminders are also delivered (Standard Webhooks signatures); the signing secret is shown once',
  access: { permission: 'breaches:acknowledge' },
  body: webhookSchema,
  responses: {
    200: { description: 'Secret', schema: z.object({ secret: z.string() }) },
    ...common,
    422: p('Not https'),
  },
});

export const breachOperations = [
  reportBreach,
  listBreaches,
  getBreach,
  updateBreach,
  recordAnalysis,
  recordAuthorityNotification,
  confirmDraft,
  decideBreach,
  draftFromAlert,
  listNotifications,
  acknowledgeNotification,
  resendDeliveries,
  setBreachWebhook,
];
