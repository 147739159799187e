// Field rules shared by every domain's input: one-line text, free text, codes, tenant ids, paging.
import { z } from 'zod';

// Control characters, format characters used for spoofing, and lone surrogates are never valid in
// a field; free text may still hold line breaks and tabs.
const NO_CONTROL = /^[^\p{Cc}\p{Cs}\u200B-\u200F\u202A-\u202E\u2066-\u2069]*$/u;
const FREE_TEXT = /^(?:[^\p{Cc}\p{Cs}\u202A-\u202E\u2066-\u2069]|[\n\t])*$/u;

/** A one-line text field of 1..max code points, without control characters. */
export const line = (max: number) =>
  z
    .string()
    .min(1)
    .refine((s) => [...s].length <= max, { message: `at most ${max} characters` })
    .refine((s) => NO_CONTROL.test(s), { message: 'control characters are not allowed' })
    .refine((s) => s.trim().length > 0, { message: 'must not be blank' });

/** Multi-line free text (line breaks and tabs allowed). */
export const freeText = (max: number) =>
  z
    .string()
    .min(1)
    .refine((s) => [...s].length <= max, { message: `at most ${max} characters` })
    .refine((s) => FREE_TEXT.test(s), { message: 'control characters are not allowed' });

export const code = (max = 64) =>
  z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]*$/, 'lowercase letters, digits and dashes')
    .max(max);

export const tenantId = z
  .string()
  .regex(
    /^[a-z0-9](?:[a-z0-9-]{1,30}[a-z0-9])$/,
    '3-32 lowercase letters, digits or dashes, starting and ending with a letter or digit',
  )
  .refine((s) => !['operator', 'platform'].includes(s), { message: 'this id is reserved' });

/** A positive page size; the default keeps responses small. */
export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(200).default(50),
  continuationToken: z.string().max(2048).optional(),
};
