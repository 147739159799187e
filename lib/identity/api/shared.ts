// What the identity contracts share: problem responses and the re-authentication field.
import { z } from 'zod';
import type { ResponseSpec } from '../../http/operation.js';
import { problemSchema } from '../../http/schemas.js';

export const p = (description: string): ResponseSpec => ({ description, schema: problemSchema });

export const common = {
  400: p('Malformed request'),
  401: p('Missing or invalid credentials'),
  403: p('Not permitted'),
};

/** Any text up to 1024 code points: the policy, not the schema, judges passwords. */
export const secret = (max: number) =>
  z
    .string()
    .min(1)
    .refine((s) => [...s].length <= max, { message: `at most ${max} characters` });

/** The current password: sensitive changes re-authenticate in the same request (a token alone is not enough). */
export const currentPassword = secret(1024);
