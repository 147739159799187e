// Logging in and out, the own password, refreshing tokens.
import { z } from 'zod';
import { defineOperation } from '../../http/operation.js';
import { tenantId } from '../../fields.js';
import { OPERATOR_REALM } from '../permissions.js';
import { common, p, secret } from './shared.js';

const loginSchema = z
  .strictObject({
    tenant: z.union([tenantId, z.literal(OPERATOR_REALM)]),
    username: z.string().min(1).max(128),
    password: secret(1024),
    totp: z
      .string()
      .regex(/^\d{6}$/)
      .optional(),
    recoveryCode: z
      .string()
      .regex(/^[0-9a-fA-F]{12}$/)
      .optional(),
  })
  .meta({ id: 'LoginRequest' });

const tokenPairSchema = z
  .object({
    accessToken: z.string(),
    refreshToken: z.string(),
    expiresIn: z.number().int(),
    mustChangePassword: z.boolean(),
  })
  .meta({ id: 'TokenPair' });

const passwordChangeSchema = z
  .strictObject({ currentPassword: secret(1024), newPassword: secret(4096) })
  .meta({ id: 'PasswordChange' });

const refreshSchema = z.strictObject({ refreshToken: z.string().min(1).max(512) });

export const login = defineOperation({
  id: 'login',
  method: 'POST',
  route: 'auth/login',
  tag: 'auth',
  summary: 'Log in with username and password (and a one-time code when enrolled)',
  access: 'public',
  body: loginSchema,
  responses: {
    200: { description: 'Tokens', schema: tokenPairSchema },
    400: p('Malformed request'),
    401: p('Invalid username or password'),
    429: p('Throttled or locked'),
  },
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
  responses: {
    200: { description: 'Tokens', schema: tokenPairSchema },
    400: p('Malformed request'),
    401: p('Invalid, expired or replayed'),
  },
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

export const authOperations = [login, changePassword, refresh, logout];
