// A tenant's users and its login policy.
import { z } from 'zod';
import { defineOperation } from '../../http/operation.js';
import { code, line } from '../../fields.js';
import { RATE_LIMITS } from '../rate-limits.js';
import { usernameSchema, emailSchema, userSchema } from '../schemas.js';
import { p, common } from './shared.js';

const roleNames = z.array(code(40)).max(20);

const userCreateSchema = z
  .strictObject({
    username: usernameSchema,
    email: emailSchema,
    name: line(200).optional(),
    roles: roleNames.optional(),
  })
  .meta({ id: 'UserInput' });

export const userCreatedSchema = z
  .object({ id: z.string(), username: z.string(), initialPassword: z.string() })
  .meta({ id: 'UserCreated' });

const userUpdateSchema = z
  .strictObject({
    email: emailSchema.optional(),
    name: line(200).optional(),
    roles: roleNames.optional(),
    status: z.enum(['active', 'deactivated']).optional(),
  })
  .refine((b) => Object.keys(b).length > 0, { message: 'nothing to change' })
  .meta({ id: 'UserUpdate' });

export const userParams = z.strictObject({ id: z.string().regex(/^[0-9a-f]{24}$/) });

const securityPolicySchema = z.strictObject({ requireMfa: z.boolean() }).meta({ id: 'SecurityPolicy' });

export const listUsers = defineOperation({
  id: 'listUsers',
  method: 'GET',
  route: 'users',
  tag: 'users',
  summary: "The tenant's users",
  access: { permission: 'users:manage' },
  responses: { 200: { description: 'Users', schema: z.object({ items: z.array(userSchema) }) }, ...common },
});

export const createUser = defineOperation({
  id: 'createUser',
  method: 'POST',
  route: 'users',
  tag: 'users',
  summary: 'Create a personal account (role `self` unless roles are given); the one-time password is shown once',
  access: { permission: 'users:manage' },
  body: userCreateSchema,
  responses: {
    201: { description: 'Created', schema: userCreatedSchema },
    ...common,
    409: p('Username taken'),
    422: p('Unknown role'),
  },
});

export const getUser = defineOperation({
  id: 'getUser',
  method: 'GET',
  route: 'users/{id}',
  tag: 'users',
  summary: 'One user',
  access: { permission: 'users:manage' },
  params: userParams,
  responses: { 200: { description: 'User', schema: userSchema }, ...common, 404: p('Unknown user') },
});

export const updateUser = defineOperation({
  id: 'updateUser',
  method: 'PATCH',
  route: 'users/{id}',
  tag: 'users',
  summary: 'Change e-mail, name, roles or status (audited); a change of roles or status ends the account’s sessions',
  access: { permission: 'users:manage' },
  params: userParams,
  body: userUpdateSchema,
  responses: {
    200: { description: 'User', schema: userSchema },
    ...common,
    404: p('Unknown user'),
    409: p('The last active tenant admin'),
    422: p('Unknown role'),
  },
});

export const deleteUser = defineOperation({
  id: 'deleteUser',
  method: 'DELETE',
  route: 'users/{id}',
  tag: 'users',
  summary: 'Deactivate a user: no login, live tokens stop at once',
  access: { permission: 'users:manage' },
  params: userParams,
  responses: {
    204: { description: 'Deactivated' },
    ...common,
    404: p('Unknown user'),
    409: p('The last active tenant admin'),
  },
});

export const resetUserPassword = defineOperation({
  id: 'resetUserPassword',
  method: 'POST',
  route: 'users/{id}/password-reset',
  tag: 'users',
  summary: 'A new one-time password (valid 72 h), unlock, and every session of the account ends',
  access: { permission: 'users:manage' },
  params: userParams,
  rateLimit: RATE_LIMITS.passwordReset,
  responses: {
    200: { description: 'One-time password', schema: userCreatedSchema },
    ...common,
    404: p('Unknown user'),
    429: p('Too many resets; see Retry-After'),
  },
});

export const unlockUser = defineOperation({
  id: 'unlockUser',
  method: 'POST',
  route: 'users/{id}/unlock',
  tag: 'users',
  summary: 'Unlock an account locked after consecutive failed logins',
  access: { permission: 'users:manage' },
  params: userParams,
  responses: { 204: { description: 'Unlocked' }, ...common, 404: p('Unknown user') },
});

export const getSecurityPolicy = defineOperation({
  id: 'getSecurityPolicy',
  method: 'GET',
  route: 'security-policy',
  tag: 'users',
  summary: "The tenant's login policy",
  access: { permission: 'users:manage' },
  responses: { 200: { description: 'Policy', schema: securityPolicySchema }, ...common },
});

export const putSecurityPolicy = defineOperation({
  id: 'putSecurityPolicy',
  method: 'PUT',
  route: 'security-policy',
  tag: 'users',
  summary: 'Require a second factor for every user of the tenant',
  access: { permission: 'users:manage' },
  body: securityPolicySchema,
  responses: { 200: { description: 'Policy', schema: securityPolicySchema }, ...common },
});

export const usersOperations = [
  listUsers,
  createUser,
  getUser,
  updateUser,
  deleteUser,
  resetUserPassword,
  unlockUser,
  getSecurityPolicy,
  putSecurityPolicy,
];
