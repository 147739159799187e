import { z } from 'zod';
import { defineOperation, type ResponseSpec } from '../http/operation.js';
import { problemSchema } from '../http/schemas.js';
import { RATE_LIMITS } from '../identity/rate-limits.js';

const p = (description: string): ResponseSpec => ({ description, schema: problemSchema });
const refusals = {
  401: p('Missing or invalid credentials'),
  403: p('Not permitted'),
  429: p('Too many reports; see Retry-After'),
};
const report = { description: 'The report', schema: z.record(z.string(), z.unknown()).meta({ id: 'TomReport' }) };
const page = { description: 'The report as a printable page', contentType: 'text/html' };
// A report verifies the realm's audit chain: the same budget as /audit/verify.
const rateLimit = RATE_LIMITS.auditVerify;

export const getToms = defineOperation({
  id: 'getToms',
  method: 'GET',
  route: 'compliance/toms',
  tag: 'contract',
  summary:
    'The technical and organisational measures in effect for the tenant (Art. 32 GDPR), read from settings and live state',
  access: { permission: 'audit:read' },
  rateLimit,
  responses: { 200: report, ...refusals },
});

export const getTomsPage = defineOperation({
  id: 'getTomsPage',
  method: 'GET',
  route: 'compliance/toms/print',
  tag: 'contract',
  summary: "The tenant's TOM report as a printable HTML page",
  access: { permission: 'audit:read' },
  rateLimit,
  responses: { 200: page, ...refusals },
});

export const getOperatorToms = defineOperation({
  id: 'getOperatorToms',
  method: 'GET',
  route: 'security/toms',
  tag: 'contract',
  summary: "The measures in effect for the vendor's own realm (operators' accounts, the platform)",
  access: { operatorPermission: 'security:read' },
  rateLimit,
  responses: { 200: report, ...refusals },
});

export const getOperatorTomsPage = defineOperation({
  id: 'getOperatorTomsPage',
  method: 'GET',
  route: 'security/toms/print',
  tag: 'contract',
  summary: "The operator realm's TOM report as a printable HTML page",
  access: { operatorPermission: 'security:read' },
  rateLimit,
  responses: { 200: page, ...refusals },
});

export const complianceOperations = [getToms, getTomsPage, getOperatorToms, getOperatorTomsPage];
