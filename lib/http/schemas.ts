import { z } from 'zod';

export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    correlationId: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    /** 403 when a caller tries to grant what it does not hold. */
    exceedingPermissions: z.array(z.string()).optional(),
  })
  .meta({ id: 'Problem' });
