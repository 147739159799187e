// The audit entry as a zod schema: the API's contract and the data export describe entries with it.
import { z } from 'zod';

export const auditEntrySchema = z
  .object({
    stream: z.string(),
    seq: z.number().int(),
    at: z.iso.datetime(),
    event: z.string(),
    action: z.enum(['C', 'R', 'U', 'D', 'E']),
    outcome: z.enum(['success', 'failure']),
    actor: z.object({ type: z.string(), id: z.string(), address: z.string().optional() }),
    entity: z.object({ type: z.string(), id: z.string() }),
    patientRef: z.string().optional(),
    purpose: z.string().optional(),
    correlationId: z.string().optional(),
    details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
    prevHash: z.string(),
    hash: z.string(),
  })
  .meta({ id: 'AuditEntry' });
