import { z } from 'zod';
import { defineOperation } from '../http/operation.js';
import { line, pageQuery } from '../fields.js';
import { problemSchema } from '../http/schemas.js';
import { RATE_LIMITS } from '../identity/rate-limits.js';
import { auditEntrySchema } from './schemas.js';

const auditQuerySchema = z.strictObject({
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  actor: line(128).optional(),
  action: line(64).optional(),
  entity: line(128).optional(),
  ...pageQuery,
});

export const listAudit = defineOperation({
  id: 'listAudit',
  method: 'GET',
  route: 'audit',
  tag: 'audit',
  summary: "The tenant's audit trail, oldest first, paged",
  access: { permission: 'audit:read' },
  query: auditQuerySchema,
  rateLimit: RATE_LIMITS.auditList,
  responses: {
    200: {
      description: 'A page of entries',
      schema: z.object({ items: z.array(auditEntrySchema), continuationToken: z.string().optional() }),
    },
    400: { description: 'Invalid query, or a continuation token not issued for it', schema: problemSchema },
    401: { description: 'Missing or invalid credentials', schema: problemSchema },
    403: { description: 'Not permitted', schema: problemSchema },
    429: { description: 'Too many listings; see Retry-After', schema: problemSchema },
  },
});

export const verifyAudit = defineOperation({
  id: 'verifyAudit',
  method: 'GET',
  route: 'audit/verify',
  tag: 'audit',
  summary:
    "Verify every hash chain of the tenant's audit trail, and that it still holds what was anchored in write-once storage",
  access: { permission: 'audit:read' },
  rateLimit: RATE_LIMITS.auditVerify,
  responses: {
    200: {
      description: 'The verification result',
      schema: z.object({
        valid: z.boolean(),
        entries: z.number().int(),
        streams: z.number().int(),
        firstBrokenAt: z.object({ stream: z.string(), seq: z.number().int(), reason: z.string() }).optional(),
        anchors: z
          .object({
            lines: z.number().int(),
            positions: z.number().int(),
            lastAnchoredAt: z.string().optional(),
            unreadableLines: z.number().int().optional(),
          })
          .optional()
          .describe(
            'The write-once anchors of the chains checked: every anchored position must still hold the hash anchored for it (a rewritten or cut past fails with anchor-mismatch or anchored-entry-missing)',
          ),
      }),
    },
    401: { description: 'Missing or invalid credentials', schema: problemSchema },
    403: { description: 'Not permitted', schema: problemSchema },
    429: { description: 'Too many verifications; see Retry-After', schema: problemSchema },
  },
});

export const anchorAuditChains = defineOperation({
  id: 'anchorAuditChainsNow',
  method: 'POST',
  route: 'security/audit-anchors',
  tag: 'security',
  summary:
    "Anchor every realm's audit chains in write-once storage now (the timer does it every hour), e.g. at the start of an investigation",
  access: { operatorPermission: 'security:read' },
  responses: {
    200: {
      description:
        'Realms anchored, and the streams whose heads were appended (those that moved since their last anchor)',
      schema: z.object({ realms: z.number().int(), streams: z.number().int() }),
    },
    401: { description: 'Missing or invalid credentials', schema: problemSchema },
    403: { description: 'Not permitted', schema: problemSchema },
  },
});

export const auditOperations = [listAudit, verifyAudit, anchorAuditChains];
