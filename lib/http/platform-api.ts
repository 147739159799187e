import { z } from 'zod';
import { defineOperation } from './operation.js';
import { problemSchema } from './schemas.js';

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
      schema: z.object({ status: z.enum(['ok', 'degraded']), storage: z.literal('ok'), readEndpoint: z.enum(['primary', 'secondary']) }),
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
  responses: { 200: { description: 'The document' } },
});

export const platformOperations = [health, openApiDocument];
