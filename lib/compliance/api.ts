import { z } from 'zod';
import { defineOperation, type ResponseSpec } from '../http/operation.js';
import { problemSchema } from '../http/schemas.js';
import { RATE_LIMITS } from '../identity/rate-limits.js';

const p = (description: string): ResponseSpec => ({ description, schema: problemSchema });
const refusals = {
  401: p('Missing or invalid credentials'),
  403: p('Needs audit:read (tenants) or security:read (operators)'),
  429: p('Too many reports; see Retry-After'),
};

export const getToms = defineOperation({
  id: 'getToms',
  method: 'GET',
  route: 'compliance/toms',
  tag: 'contract',
  summary:
    "The technical and organisational measures in effect (Art. 32 GDPR), read from settings and live state: the caller's realm",
  access: 'authenticated',
  // The report verifies the realm's audit chain: the same budget as /audit/verify.
  rateLimit: RATE_LIMITS.auditVerify,
  responses: {
    200: { description: 'The report', schema: z.record(z.string(), z.unknown()).meta({ id: 'TomReport' }) },
    ...refusals,
  },
});

export const getTomsHtml = defineOperation({
  id: 'getTomsHtml',
  method: 'GET',
  route: 'compliance/toms/print',
  tag: 'contract',
  summary: 'The same report as a printable HTML page',
  access: 'authenticated',
  rateLimit: RATE_LIMITS.auditVerify,
  responses: { 200: { description: 'HTML', contentType: 'text/html' }, ...refusals },
});

export const complianceOperations = [getToms, getTomsHtml];
