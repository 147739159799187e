// The platform's own operations: health, this API's document, the orchestrations operators manage.
import { z } from 'zod';
import { defineOperation } from '../http/operation.js';
import { approvalSchema } from '../approvals/api.js';
import { line } from '../fields.js';
import { problemSchema } from '../http/schemas.js';

export const health = defineOperation({
  id: 'health',
  method: 'GET',
  route: 'health',
  tag: 'platform',
  summary: 'Liveness and storage reachability',
  access: 'public',
  responses: {
    200: {
      description: 'Healthy ("degraded": the primary is down and reads come from the secondary)',
      schema: z.object({
        status: z.enum(['ok', 'degraded']),
        storage: z.literal('ok'),
        readEndpoint: z.enum(['primary', 'secondary']),
      }),
    },
    503: { description: 'Storage unreachable', schema: problemSchema },
  },
});

export const openApiDocument = defineOperation({
  id: 'openApiDocument',
  method: 'GET',
  route: 'openapi.json',
  tag: 'platform',
  summary: 'This OpenAPI 3.1 document',
  access: 'public',
  responses: {
    200: {
      description: 'The document',
      schema: z.looseObject({
        openapi: z.string(),
        info: z.looseObject({ title: z.string(), version: z.string() }),
        paths: z.record(z.string(), z.unknown()),
      }),
    },
  },
});

const orchestrationSchema = z
  .object({
    name: z.string(),
    instanceId: z.string(),
    runtimeStatus: z.string(),
    createdTime: z.string(),
    lastUpdatedTime: z.string(),
    customStatus: z.unknown().optional(),
  })
  .meta({ id: 'Orchestration' });

export const listOrchestrations = defineOperation({
  id: 'listOrchestrations',
  method: 'GET',
  route: 'orchestrations',
  tag: 'operations',
  summary: 'Orchestration instances and their status (never their inputs or outputs)',
  access: { operatorPermission: 'orchestrations:manage' },
  query: z.strictObject({
    runtimeStatus: z.enum(['Pending', 'Running', 'Completed', 'Failed', 'Terminated', 'Suspended']).optional(),
  }),
  responses: {
    200: { description: 'Instances', schema: z.object({ items: z.array(orchestrationSchema) }) },
    401: { description: 'Missing or invalid credentials', schema: problemSchema },
    403: { description: 'Not permitted', schema: problemSchema },
  },
});

export const purgeOrchestration = defineOperation({
  id: 'purgeOrchestration',
  method: 'DELETE',
  route: 'orchestrations/{instanceId}',
  tag: 'operations',
  summary: "Ask to purge a finished orchestration's history: runs once a second operator approves (four-eyes)",
  access: { operatorPermission: 'orchestrations:manage' },
  params: z.strictObject({ instanceId: z.string().regex(/^[A-Za-z0-9:_-]{1,200}$/) }),
  query: z.strictObject({ reason: line(500).optional() }),
  responses: {
    202: { description: 'Requested; waits for a second operator', schema: approvalSchema },
    401: { description: 'Missing or invalid credentials', schema: problemSchema },
    403: { description: 'Not permitted', schema: problemSchema },
    404: { description: 'Unknown instance', schema: problemSchema },
    409: { description: 'Still running', schema: problemSchema },
  },
});

export const platformOperations = [health, openApiDocument, listOrchestrations, purgeOrchestration];
