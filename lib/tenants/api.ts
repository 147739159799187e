// Creating a tenant with its first admin (the vendor's operators).
import { z } from 'zod';
import { line, pageQuery, tenantId } from '../fields.js';
import { defineOperation } from '../http/operation.js';
import { common, p } from '../identity/api/shared.js';
import { emailSchema, usernameSchema } from '../identity/schemas.js';

export const tenantCreateSchema = z
  .strictObject({
    id: tenantId,
    name: line(200),
    admin: z.strictObject({ username: usernameSchema, email: emailSchema, name: line(200).optional() }),
    retention: z
      .strictObject({
        imagesDays: z.number().int().min(1).max(36500),
        ordersDays: z.number().int().min(1).max(36500),
        afterContractEndDays: z.number().int().min(30).max(3650),
      })
      .optional(),
  })
  .meta({ id: 'TenantInput' });
const tenantCreatedSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    admin: z.object({ id: z.string(), username: z.string(), initialPassword: z.string() }),
  })
  .meta({ id: 'TenantCreated' });

export const createTenant = defineOperation({
  id: 'createTenant',
  method: 'POST',
  route: 'tenants',
  tag: 'tenants',
  summary: 'Create a tenant with its first admin (password shown once)',
  access: { operatorPermission: 'tenants:manage' },
  body: tenantCreateSchema,
  responses: {
    201: { description: 'Created', schema: tenantCreatedSchema },
    ...common,
    409: p('Tenant id taken, or its creation is under way'),
  },
});

const tenantSummarySchema = z
  .object({
    id: z.string(),
    /** Null once the tenant is deleted: its directory entry is gone, its lifecycle stays. */
    name: z.string().nullable(),
    createdAt: z.string().nullable(),
    lifecycle: z.object({
      status: z.enum(['active', 'scheduled', 'on-hold', 'deleting', 'completed', 'withdrawn', 'not-terminated']),
      deleteAt: z.string().nullable(),
      legalHold: z.boolean(),
    }),
  })
  .meta({ id: 'TenantSummary' });

export const listTenants = defineOperation({
  id: 'listTenants',
  method: 'GET',
  route: 'tenants',
  tag: 'tenants',
  summary:
    'Every tenant with where it stands: active, deletion scheduled or on hold, deleted (name gone, certificate kept)',
  access: { operatorPermission: 'tenants:manage' },
  query: z.strictObject(pageQuery),
  responses: {
    200: {
      description: 'Tenants in id order, a page at a time (continuationToken while there are more)',
      schema: z.object({ items: z.array(tenantSummarySchema), continuationToken: z.string().optional() }),
    },
    ...common,
  },
});

export const tenantOperations = [createTenant, listTenants];
