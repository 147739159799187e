// The records of the identity domain and the account fields their inputs share, as zod schemas: the
// API's contract and the data export both describe them with these.
import { z } from 'zod';
import { permissionSchema } from './permissions.js';

export const usernameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._@-]{2,63}$/, '3-64 lowercase letters, digits, ".", "_", "@", "-"');

export const emailSchema = z.email().max(254);

export const userSchema = z
  .object({
    id: z.string(),
    username: z.string(),
    email: z.string(),
    name: z.string().optional(),
    roles: z.array(z.string()),
    status: z.enum(['active', 'deactivated']),
    mfaEnabled: z.boolean(),
    mustChangePassword: z.boolean(),
    /** Locked after consecutive failed logins, until unlocked (shown to those who manage users). */
    locked: z.boolean().optional(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'User' });

export const roleSchema = z
  .object({ name: z.string(), permissions: z.array(permissionSchema), builtIn: z.boolean() })
  .meta({ id: 'Role' });

export const integrationSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    permissions: z.array(permissionSchema),
    createdAt: z.string(),
    revokedAt: z.string().optional(),
  })
  .meta({ id: 'Integration' });
