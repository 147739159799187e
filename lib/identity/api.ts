import { z } from 'zod';
import { defineOperation, type ResponseSpec } from '../http/operation.js';
import { code, line, problemSchema, tenantId } from '../http/schemas.js';
import { GRANTABLE_PERMISSIONS, OPERATOR_REALM, operatorRoleSchema, permissionSchema } from './permissions.js';
import { RATE_LIMITS } from './rate-limits.js';

const p = (description: string): ResponseSpec => ({ description, schema: problemSchema });
const common = { 400: p('Malformed request'), 401: p('Missing or invalid credentials'), 403: p('Not permitted') };

// ---- schemas ----

const usernameSchema = z.string().regex(/^[a-z0-9][a-z0-9._@-]{2,63}$/, '3-64 lowercase letters, digits, ".", "_", "@", "-"');
const emailSchema = z.email().max(254);
/** Any text up to 1024 code points: the policy, not the schema, judges passwords. */
const secret = (max: number) => z.string().min(1).refine((s) => [...s].length <= max, { message: `at most ${max} characters` });

export const loginSchema = z
  .strictObject({
    tenant: z.union([tenantId, z.literal(OPERATOR_REALM)]),
    username: z.string().min(1).max(128),
    password: secret(1024),
    totp: z.string().regex(/^\d{6}$/).optional(),
    recoveryCode: z.string().regex(/^[0-9a-fA-F]{12}$/).optional(),
  })
  .meta({ id: 'LoginRequest' });

export const tokenPairSchema = z
  .object({ accessToken: z.string(), refreshToken: z.string(), expiresIn: z.number().int(), mustChangePassword: z.boolean() })
  .meta({ id: 'TokenPair' });

export const passwordChangeSchema = z.strictObject({ currentPassword: secret(1024), newPassword: secret(4096) }).meta({ id: 'PasswordChange' });
export const refreshSchema = z.strictObject({ refreshToken: z.string().min(1).max(512) });

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

export const meSchema = userSchema.extend({ realm: z.string(), permissions: z.array(z.string()) }).meta({ id: 'Me' });

const roleNames = z.array(code(40)).max(20);
export const userCreateSchema = z.strictObject({ username: usernameSchema, email: emailSchema, name: line(200).optional(), roles: roleNames.optional() }).meta({ id: 'UserInput' });
export const userCreatedSchema = z.object({ id: z.string(), username: z.string(), initialPassword: z.string() }).meta({ id: 'UserCreated' });
export const userUpdateSchema = z
  .strictObject({ email: emailSchema.optional(), name: line(200).optional(), roles: roleNames.optional(), status: z.enum(['active', 'deactivated']).optional() })
  .refine((b) => Object.keys(b).length > 0, { message: 'nothing to change' })
  .meta({ id: 'UserUpdate' });
/** The current password: sensitive changes re-authenticate in the same request (a token alone is not enough). */
const currentPassword = secret(1024);

export const meUpdateSchema = z
  .strictObject({ email: emailSchema.optional(), name: line(200).optional(), currentPassword: currentPassword.optional() })
  .refine((b) => b.email !== undefined || b.name !== undefined, { message: 'nothing to change' })
  .refine((b) => b.email === undefined || b.currentPassword !== undefined, { message: 'changing the e-mail needs currentPassword', path: ['currentPassword'] });
export const userParams = z.strictObject({ id: z.string().regex(/^[0-9a-f]{24}$/) });

export const roleSchema = z.object({ name: z.string(), permissions: z.array(permissionSchema), builtIn: z.boolean() }).meta({ id: 'Role' });
export const roleParams = z.strictObject({ name: code(40) });
export const rolePutSchema = z.strictObject({ permissions: z.array(permissionSchema).max(15) });

export const integrationSchema = z
  .object({ id: z.string(), name: z.string(), permissions: z.array(permissionSchema), createdAt: z.string(), revokedAt: z.string().optional() })
  .meta({ id: 'Integration' });
export const integrationCreateSchema = z.strictObject({ name: line(200), permissions: z.array(permissionSchema).min(1).max(15), currentPassword });
export const integrationParams = z.strictObject({ id: z.string().regex(/^[0-9a-f]{16}$/) });

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
export const tenantCreatedSchema = z
  .object({ id: z.string(), name: z.string(), admin: z.object({ id: z.string(), username: z.string(), initialPassword: z.string() }) })
  .meta({ id: 'TenantCreated' });

export const operatorCreateSchema = z.strictObject({ username: usernameSchema, email: emailSchema, name: line(200).optional(), roles: z.array(operatorRoleSchema).min(1) });

export const securityPolicySchema = z.strictObject({ requireMfa: z.boolean() }).meta({ id: 'SecurityPolicy' });
export const totpStartSchema = z.object({ otpauthUri: z.string(), secret: z.string() });
export const reauthSchema = z.strictObject({ currentPassword }).meta({ id: 'Reauthentication' });
export const totpConfirmSchema = z.strictObject({ code: z.string().regex(/^\d{6}$/), currentPassword });
const recoveryCodesSchema = z.object({ recoveryCodes: z.array(z.string()) });

export const alertSchema = z
  .object({ id: z.string(), kind: z.string(), detectedAt: z.string(), realm: z.string().optional(), sourceRef: z.string().optional(), accountRef: z.string().optional(), count: z.number(), summary: z.string() })
  .meta({ id: 'SecurityAlert' });

export const accessRequestCreateSchema = z.strictObject({
  tenant: tenantId,
  reason: line(500),
  minutes: z.number().int().min(5).max(480),
  permissions: z.array(z.enum(GRANTABLE_PERMISSIONS as [string, ...string[]])).min(1),
});
export const accessRequestSchema = z
  .object({
    id: z.string(),
    tenant: z.string(),
    operatorId: z.string(),
    reason: z.string(),
    minutes: z.number(),
    permissions: z.array(z.string()),
    status: z.enum(['pending', 'approved', 'denied']),
    requestedAt: z.string(),
    decidedAt: z.string().optional(),
    decidedBy: z.string().optional(),
    expiresAt: z.string().optional(),
    revokedAt: z.string().optional(),
  })
  .meta({ id: 'AccessRequest' });
export const accessRequestParams = z.strictObject({ id: z.string().regex(/^[0-9a-f]{24}$/) });
export const approvalSchema = z.strictObject({ approve: z.boolean() });

// ---- operations ----

export const login = defineOperation({
  id: 'login',
  method: 'POST',
  route: 'auth/login',
  tag: 'auth',
  summary: 'Log in with username and password (and a one-time code when enrolled)',
  access: 'public',
  body: loginSchema,
  responses: { 200: { description: 'Tokens', schema: tokenPairSchema }, 400: p('Malformed request'), 401: p('Invalid username or password'), 429: p('Throttled or locked') },
});

export const changePassword = defineOperation({
  id: 'changePassword',
  method: 'POST',
  route: 'auth/password',
  tag: 'auth',
  summary: 'Change the own password (the only call a first-login token may make)',
  access: 'authenticated',
  scopes: ['password-change', 'mfa-enrolment'],
  body: passwordChangeSchema,
  responses: { 204: { description: 'Changed' }, ...common, 422: p('Policy broken; each rule in errors') },
});

export const refresh = defineOperation({
  id: 'refreshTokens',
  method: 'POST',
  route: 'auth/refresh',
  tag: 'auth',
  summary: 'Swap a refresh token for a new pair (replay revokes the family)',
  access: 'public',
  body: refreshSchema,
  responses: { 200: { description: 'Tokens', schema: tokenPairSchema }, 400: p('Malformed request'), 401: p('Invalid, expired or replayed') },
});

export const logout = defineOperation({
  id: 'logout',
  method: 'POST',
  route: 'auth/logout',
  tag: 'auth',
  summary: 'End the session (refresh token revoked, access tokens stop)',
  access: 'authenticated',
  scopes: ['password-change', 'mfa-enrolment'],
  responses: { 204: { description: 'Logged out' }, 401: p('Missing or invalid credentials') },
});

export const getMe = defineOperation({
  id: 'getMe',
  method: 'GET',
  route: 'me',
  tag: 'profile',
  summary: 'The own profile',
  access: 'authenticated',
  responses: { 200: { description: 'Profile', schema: meSchema }, ...common },
});

export const updateMe = defineOperation({
  id: 'updateMe',
  method: 'PATCH',
  route: 'me',
  tag: 'profile',
  summary: 'Edit the own profile (name; the e-mail with the current password)',
  access: 'authenticated',
  body: meUpdateSchema,
  responses: { 200: { description: 'Profile', schema: meSchema }, ...common, 429: p('Too many wrong passwords') },
});

export const startTotp = defineOperation({
  id: 'startTotp',
  method: 'POST',
  route: 'me/mfa/totp',
  tag: 'profile',
  summary: 'Begin TOTP enrolment or replacement (current password): a QR-ready otpauth URI',
  access: 'authenticated',
  scopes: ['mfa-enrolment'],
  body: reauthSchema,
  responses: { 200: { description: 'The secret to scan', schema: totpStartSchema }, ...common, 429: p('Too many wrong passwords') },
});

export const confirmTotp = defineOperation({
  id: 'confirmTotp',
  method: 'POST',
  route: 'me/mfa/totp/confirmation',
  tag: 'profile',
  summary: "Confirm TOTP with a code (and the current password); returns recovery codes once; the account's other sessions end",
  access: 'authenticated',
  scopes: ['mfa-enrolment'],
  body: totpConfirmSchema,
  responses: { 200: { description: 'Recovery codes', schema: recoveryCodesSchema }, ...common, 422: p('Wrong code'), 429: p('Too many wrong passwords') },
});

export const removeTotp = defineOperation({
  id: 'removeTotp',
  method: 'POST',
  route: 'me/mfa/totp/removal',
  tag: 'profile',
  summary: "Remove the second factor (current password; not where the tenant requires one); the account's other sessions end",
  access: 'authenticated',
  body: reauthSchema,
  responses: { 204: { description: 'Removed' }, ...common, 409: p('None enrolled, or required by the tenant'), 422: p('Password too short without a second factor'), 429: p('Too many wrong passwords') },
});

export const regenerateRecoveryCodes = defineOperation({
  id: 'regenerateRecoveryCodes',
  method: 'POST',
  route: 'me/mfa/recovery-codes',
  tag: 'profile',
  summary: 'Ten new recovery codes (current password); the old ones stop working',
  access: 'authenticated',
  body: reauthSchema,
  responses: { 200: { description: 'Recovery codes', schema: recoveryCodesSchema }, ...common, 409: p('No second factor'), 429: p('Too many wrong passwords') },
});

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
  responses: { 201: { description: 'Created', schema: userCreatedSchema }, ...common, 409: p('Username taken'), 422: p('Unknown role') },
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
  responses: { 200: { description: 'User', schema: userSchema }, ...common, 404: p('Unknown user'), 409: p('The last active tenant admin'), 422: p('Unknown role') },
});

export const deleteUser = defineOperation({
  id: 'deleteUser',
  method: 'DELETE',
  route: 'users/{id}',
  tag: 'users',
  summary: 'Deactivate a user: no login, live tokens stop at once',
  access: { permission: 'users:manage' },
  params: userParams,
  responses: { 204: { description: 'Deactivated' }, ...common, 404: p('Unknown user'), 409: p('The last active tenant admin') },
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
  responses: { 200: { description: 'One-time password', schema: userCreatedSchema }, ...common, 404: p('Unknown user'), 429: p('Too many resets; see Retry-After') },
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
  responses: { 200: { description: 'Changed', schema: roleSchema }, 201: { description: 'Created', schema: roleSchema }, ...common, 422: p('Built-in role') },
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

export const listIntegrations = defineOperation({
  id: 'listIntegrations',
  method: 'GET',
  route: 'integrations',
  tag: 'integrations',
  summary: "The tenant's integrations (never their keys)",
  access: { permission: 'integrations:manage' },
  responses: { 200: { description: 'Integrations', schema: z.object({ items: z.array(integrationSchema) }) }, ...common },
});

export const createIntegration = defineOperation({
  id: 'createIntegration',
  method: 'POST',
  route: 'integrations',
  tag: 'integrations',
  summary: 'Create an integration (current password; only permissions the caller holds); its API key is shown once',
  access: { permission: 'integrations:manage' },
  body: integrationCreateSchema,
  responses: { 201: { description: 'Created', schema: z.object({ id: z.string(), apiKey: z.string() }) }, ...common, 429: p('Too many wrong passwords') },
});

export const revokeIntegration = defineOperation({
  id: 'revokeIntegration',
  method: 'DELETE',
  route: 'integrations/{id}',
  tag: 'integrations',
  summary: "Revoke an integration's key",
  access: { permission: 'integrations:manage' },
  params: integrationParams,
  responses: { 204: { description: 'Revoked' }, ...common, 404: p('Unknown integration') },
});

export const createTenant = defineOperation({
  id: 'createTenant',
  method: 'POST',
  route: 'tenants',
  tag: 'tenants',
  summary: 'Create a tenant with its first admin (password shown once)',
  access: { operatorPermission: 'tenants:manage' },
  body: tenantCreateSchema,
  responses: { 201: { description: 'Created', schema: tenantCreatedSchema }, ...common, 409: p('Tenant id taken') },
});

export const createOperator = defineOperation({
  id: 'createOperator',
  method: 'POST',
  route: 'operators',
  tag: 'operators',
  summary: 'Create an operator account (operator-admin)',
  access: { operatorPermission: 'operators:manage' },
  body: operatorCreateSchema,
  responses: { 201: { description: 'Created', schema: userCreatedSchema }, ...common, 409: p('Username taken') },
});

export const unlockOperator = defineOperation({
  id: 'unlockOperator',
  method: 'POST',
  route: 'operators/{id}/unlock',
  tag: 'operators',
  summary: "Unlock another operator's account (never one's own)",
  access: { operatorPermission: 'operators:manage' },
  params: userParams,
  responses: { 204: { description: 'Unlocked' }, ...common, 404: p('Unknown operator') },
});

export const listSecurityAlerts = defineOperation({
  id: 'listSecurityAlerts',
  method: 'GET',
  route: 'security/alerts',
  tag: 'security',
  summary: 'Brute-force, spraying and stuffing detections, newest first',
  access: { operatorPermission: 'security:read' },
  responses: { 200: { description: 'Alerts', schema: z.object({ items: z.array(alertSchema) }) }, ...common },
});

export const createAccessRequest = defineOperation({
  id: 'createAccessRequest',
  method: 'POST',
  route: 'access-requests',
  tag: 'staff-access',
  summary: 'An operator asks one tenant for time-boxed access, with a reason',
  access: { operatorPermission: 'access-requests:create' },
  body: accessRequestCreateSchema,
  responses: { 201: { description: 'Requested', schema: accessRequestSchema }, ...common, 404: p('Unknown tenant') },
});

export const listAccessRequests = defineOperation({
  id: 'listAccessRequests',
  method: 'GET',
  route: 'access-requests',
  tag: 'staff-access',
  summary: "The tenant's staff access requests",
  access: { permission: 'access-requests:approve' },
  responses: { 200: { description: 'Requests', schema: z.object({ items: z.array(accessRequestSchema) }) }, ...common },
});

export const decideAccessRequest = defineOperation({
  id: 'decideAccessRequest',
  method: 'POST',
  route: 'access-requests/{id}/approval',
  tag: 'staff-access',
  summary: 'Approve or deny a staff access request',
  access: { permission: 'access-requests:approve' },
  params: accessRequestParams,
  body: approvalSchema,
  responses: { 200: { description: 'Decided', schema: accessRequestSchema }, ...common, 404: p('Unknown request'), 409: p('Decided already') },
});

export const revokeAccessGrant = defineOperation({
  id: 'revokeAccessGrant',
  method: 'POST',
  route: 'access-requests/{id}/revocation',
  tag: 'staff-access',
  summary: 'End an approved staff grant at once (download links issued under it stop working)',
  access: { permission: 'access-requests:approve' },
  params: accessRequestParams,
  responses: { 200: { description: 'Revoked', schema: accessRequestSchema }, ...common, 404: p('Unknown request'), 409: p('Not a live grant') },
});

export const identityOperations = [
  login,
  changePassword,
  refresh,
  logout,
  getMe,
  updateMe,
  startTotp,
  confirmTotp,
  removeTotp,
  regenerateRecoveryCodes,
  listUsers,
  createUser,
  getUser,
  updateUser,
  deleteUser,
  resetUserPassword,
  unlockUser,
  getSecurityPolicy,
  putSecurityPolicy,
  listRoles,
  putRole,
  deleteRole,
  listIntegrations,
  createIntegration,
  revokeIntegration,
  createTenant,
  createOperator,
  unlockOperator,
  listSecurityAlerts,
  createAccessRequest,
  listAccessRequests,
  decideAccessRequest,
  revokeAccessGrant,
];
