// The own profile and second factor (TOTP, recovery codes).
import { z } from 'zod';
import { defineOperation } from '../../http/operation.js';
import { line } from '../../fields.js';
import { emailSchema, userSchema } from '../schemas.js';
import { common, currentPassword, p } from './shared.js';

const meSchema = userSchema.extend({ realm: z.string(), permissions: z.array(z.string()) }).meta({ id: 'Me' });

const meUpdateSchema = z
  .strictObject({
    email: emailSchema.optional(),
    name: line(200).optional(),
    currentPassword: currentPassword.optional(),
  })
  .refine((b) => b.email !== undefined || b.name !== undefined, { message: 'nothing to change' })
  .refine((b) => b.email === undefined || b.currentPassword !== undefined, {
    message: 'changing the e-mail needs currentPassword',
    path: ['currentPassword'],
  });

const totpStartSchema = z.object({ otpauthUri: z.string(), secret: z.string() });

const reauthSchema = z.strictObject({ currentPassword }).meta({ id: 'Reauthentication' });

const totpConfirmSchema = z.strictObject({ code: z.string().regex(/^\d{6}$/), currentPassword });

const recoveryCodesSchema = z.object({ recoveryCodes: z.array(z.string()) });

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
  responses: {
    200: { description: 'The secret to scan', schema: totpStartSchema },
    ...common,
    429: p('Too many wrong passwords'),
  },
});

export const confirmTotp = defineOperation({
  id: 'confirmTotp',
  method: 'POST',
  route: 'me/mfa/totp/confirmation',
  tag: 'profile',
  summary:
    "Confirm TOTP with a code (and the current password); returns recovery codes once; the account's other sessions end",
  access: 'authenticated',
  scopes: ['mfa-enrolment'],
  body: totpConfirmSchema,
  responses: {
    200: { description: 'Recovery codes', schema: recoveryCodesSchema },
    ...common,
    422: p('Wrong code'),
    429: p('Too many wrong passwords'),
  },
});

export const removeTotp = defineOperation({
  id: 'removeTotp',
  method: 'POST',
  route: 'me/mfa/totp/removal',
  tag: 'profile',
  summary:
    "Remove the second factor (current password; not where the tenant requires one); the account's other sessions end",
  access: 'authenticated',
  body: reauthSchema,
  responses: {
    204: { description: 'Removed' },
    ...common,
    409: p('None enrolled, or required by the tenant'),
    422: p('Password too short without a second factor'),
    429: p('Too many wrong passwords'),
  },
});

export const regenerateRecoveryCodes = defineOperation({
  id: 'regenerateRecoveryCodes',
  method: 'POST',
  route: 'me/mfa/recovery-codes',
  tag: 'profile',
  summary: 'Ten new recovery codes (current password); the old ones stop working',
  access: 'authenticated',
  body: reauthSchema,
  responses: {
    200: { description: 'Recovery codes', schema: recoveryCodesSchema },
    ...common,
    409: p('No second factor'),
    429: p('Too many wrong passwords'),
  },
});

export const profileOperations = [getMe, updateMe, startTotp, confirmTotp, removeTotp, regenerateRecoveryCodes];
