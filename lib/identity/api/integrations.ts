// Integrations (LIS, hospital and practice systems) and their API keys.
import { z } from 'zod';
import { defineOperation } from '../../http/operation.js';
import { line } from '../../fields.js';
import { permissionSchema } from '../permissions.js';
import { integrationSchema } from '../schemas.js';
import { p, common, currentPassword } from './shared.js';

const integrationCreateSchema = z.strictObject({
  name: line(200),
  permissions: z.array(permissionSchema).min(1).max(15),
  currentPassword,
});

const integrationParams = z.strictObject({ id: z.string().regex(/^[0-9a-f]{16}$/) });

export const listIntegrations = defineOperation({
  id: 'listIntegrations',
  method: 'GET',
  route: 'integrations',
  tag: 'integrations',
  summary: "The tenant's integrations (never their keys)",
  access: { permission: 'integrations:manage' },
  responses: {
    200: { description: 'Integrations', schema: z.object({ items: z.array(integrationSchema) }) },
    ...common,
  },
});

export const createIntegration = defineOperation({
  id: 'createIntegration',
  method: 'POST',
  route: 'integrations',
  tag: 'integrations',
  summary: 'Create an integration (current password; only permissions the caller holds); its API key is shown once',
  access: { permission: 'integrations:manage' },
  body: integrationCreateSchema,
  responses: {
    201: { description: 'Created', schema: z.object({ id: z.string(), apiKey: z.string() }) },
    ...common,
    429: p('Too many wrong passwords'),
  },
});

export const revokeIntegration = defineOperation({
  id: 'revokeIntegration',
  method: 'DELETE',
  route: 'integrations/{id}',
  tag: 'integrations',
  summary: "Revoke an integration's key; answers once the key fails on every instance",
  access: { permission: 'integrations:manage' },
  params: integrationParams,
  responses: { 204: { description: 'Revoked' }, ...common, 404: p('Unknown integration') },
});

export const integrationsOperations = [listIntegrations, createIntegration, revokeIntegration];
