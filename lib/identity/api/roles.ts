// Built-in and custom roles.
import { z } from 'zod';
import { defineOperation } from '../../http/operation.js';
import { code } from '../../fields.js';
import { permissionSchema } from '../permissions.js';
import { roleSchema } from '../schemas.js';
import { p, common } from './shared.js';

const roleParams = z.strictObject({ name: code(40) });

const rolePutSchema = z.strictObject({ permissions: z.array(permissionSchema).max(15) });

export const listRoles = defineOperation({
  id: 'listRoles',
  method: 'GET',
  route: 'roles',
  tag: 'roles',
  summary: 'Built-in and custom roles',
  access: { permission: 'roles:manage' },
  responses: { 200: { description: 'Roles', schema: z.object({ items: z.array(roleSchema) }) }, ...common },
});

export const putRole = defineOperation({
  id: 'putRole',
  method: 'PUT',
  route: 'roles/{name}',
  tag: 'roles',
  summary: 'Define or change a custom role from the permission vocabulary',
  access: { permission: 'roles:manage' },
  params: roleParams,
  body: rolePutSchema,
  responses: {
    200: { description: 'Changed', schema: roleSchema },
    201: { description: 'Created', schema: roleSchema },
    ...common,
    422: p('Built-in role'),
  },
});

export const deleteRole = defineOperation({
  id: 'deleteRole',
  method: 'DELETE',
  route: 'roles/{name}',
  tag: 'roles',
  summary: 'Delete a custom role no user holds',
  access: { permission: 'roles:manage' },
  params: roleParams,
  responses: { 204: { description: 'Deleted' }, ...common, 404: p('Unknown role'), 409: p('Role still held') },
});

export const rolesOperations = [listRoles, putRole, deleteRole];
