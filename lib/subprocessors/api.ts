import { z } from 'zod';
import { freeText, line } from '../fields.js';
import { defineOperation, type ResponseSpec } from '../http/operation.js';
import { problemSchema } from '../http/schemas.js';

const p = (description: string): ResponseSpec => ({ description, schema: problemSchema });
const common = { 400: p('Malformed request'), 401: p('Missing or invalid credentials'), 403: p('Not permitted') };
const params = z.strictObject({ id: z.string().regex(/^[0-9a-f]{24}$/) });

const subProcessorSchema = z
  .strictObject({
    name: line(200),
    purpose: line(500),
    location: line(100),
    dataCategories: z.array(line(100)).min(1).max(30),
    safeguards: line(1000),
  })
  .meta({ id: 'SubProcessor' });
const versionSchema = z
  .object({
    version: z.number(),
    effectiveAt: z.string(),
    changeId: z.string().optional(),
    items: z.array(subProcessorSchema),
  })
  .meta({ id: 'SubProcessorRegisterVersion' });
const objectionSchema = z
  .object({ tenant: z.string(), reason: z.string(), at: z.string(), by: z.string() })
  .meta({ id: 'SubProcessorObjection' });
const changeSchema = z
  .object({
    id: z.string(),
    status: z.enum(['announced', 'effective', 'withdrawn']),
    summary: z.string(),
    announcedAt: z.string(),
    announcedBy: z.string(),
    effectiveAt: z.string().describe('The end of the objection window: the change takes effect then, not before'),
    items: z.array(subProcessorSchema),
    withdrawnAt: z.string().optional(),
    objections: z.array(objectionSchema).describe("Operators see every tenant's objection; a tenant its own"),
  })
  .meta({ id: 'SubProcessorChange' });

export const getSubProcessors = defineOperation({
  id: 'getSubProcessors',
  method: 'GET',
  route: 'sub-processors',
  tag: 'contract',
  summary: 'The sub-processor register in force, its versions and the planned changes with their objection windows',
  access: 'authenticated',
  responses: {
    200: {
      description: 'Register and changes',
      schema: z.object({ current: versionSchema, versions: z.array(versionSchema), changes: z.array(changeSchema) }),
    },
    401: p('Missing or invalid credentials'),
  },
});

export const announceSubProcessorChange = defineOperation({
  id: 'announceSubProcessorChange',
  method: 'POST',
  route: 'sub-processors/changes',
  tag: 'contract',
  summary:
    'Announce a change of sub-processors (the whole new register) to every tenant; it takes effect after the objection window',
  access: { operatorPermission: 'tenants:manage' },
  body: z
    .strictObject({ summary: freeText(1000), items: z.array(subProcessorSchema).min(1).max(100) })
    .meta({ id: 'SubProcessorChangeInput' }),
  responses: {
    201: { description: 'Announced', schema: changeSchema },
    ...common,
    409: p('A change is announced already'),
  },
});

export const objectToSubProcessorChange = defineOperation({
  id: 'objectToSubProcessorChange',
  method: 'POST',
  route: 'sub-processors/changes/{id}/objections',
  tag: 'contract',
  summary: "The tenant's objection to an announced change, with its reason, while the window is open",
  access: { permission: 'sub-processors:object' },
  params,
  body: z.strictObject({ reason: freeText(2000) }).meta({ id: 'SubProcessorObjectionInput' }),
  responses: {
    201: { description: 'Recorded (operators see it)', schema: objectionSchema },
    ...common,
    404: p('Unknown change'),
    409: p('Window closed, or this tenant objected already'),
  },
});

export const withdrawSubProcessorChange = defineOperation({
  id: 'withdrawSubProcessorChange',
  method: 'POST',
  route: 'sub-processors/changes/{id}/withdrawal',
  tag: 'contract',
  summary: 'Withdraw an announced change before it takes effect',
  access: { operatorPermission: 'tenants:manage' },
  params,
  responses: {
    200: { description: 'Withdrawn', schema: changeSchema },
    ...common,
    404: p('Unknown change'),
    409: p('In effect or withdrawn already'),
  },
});

export const subProcessorOperations = [
  getSubProcessors,
  announceSubProcessorChange,
  objectToSubProcessorChange,
  withdrawSubProcessorChange,
];
