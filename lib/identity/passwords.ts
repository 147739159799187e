import { randomInt } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';

// @node-rs/argon2's Algorithm is a const enum; its Argon2id member is 2.
const ARGON2ID = 2;
import { dictionary } from '@zxcvbn-ts/language-common';
import type { FieldError } from '../http/problem.js';

/** OWASP's Argon2id baseline: m = 19 MiB, t = 2, p = 1. */
export const ARGON2_TARGET = { memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

export interface PasswordHasherOptions {
  memoryCost?: number;
  timeCost?: number;
}

/** NFC, as NIST SP 800-63B asks before hashing; never truncated. */
export function normalisePassword(password: string): string {
  return password.normalize('NFC');
}

export async function hashPassword(password: string, options: PasswordHasherOptions = {}): Promise<string> {
  return hash(normalisePassword(password), {
    algorithm: ARGON2ID,
    memoryCost: options.memoryCost ?? ARGON2_TARGET.memoryCost,
    timeCost: options.timeCost ?? ARGON2_TARGET.timeCost,
    parallelism: ARGON2_TARGET.parallelism,
  });
}

export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  try {
    return await verify(phc, normalisePassword(password));
  } catch {
    return false;
  }
}

/** True when a stored PHC string is weaker than the target (or not Argon2id): rehash at login. */
export function needsRehash(phc: string): boolean {
  const m = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(phc);
  if (!m) return true;
  return Number(m[1]) < ARGON2_TARGET.memoryCost || Number(m[2]) < ARGON2_TARGET.timeCost || Number(m[3]) !== ARGON2_TARGET.parallelism;
}

/** A hash of a random password, verified against for unknown users so their timing matches. */
let dummyHash: Promise<string> | undefined;
export function dummyPasswordHash(): Promise<string> {
  dummyHash ??= hashPassword(generateInitialPassword());
  return dummyHash;
}

// Unambiguous letters and digits: 20 characters carry about 114 bits.
const INITIAL_ALPHABET = 'abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789';
export function generateInitialPassword(length = 20): string {
  let out = '';
  for (let i = 0; i < length; i++) out += INITIAL_ALPHABET[randomInt(INITIAL_ALPHABET.length)];
  return out;
}

const BLOCKLIST = new Set(dictionary['passwords-common'].map((p) => p.normalize('NFKC').toLowerCase()));
export const BLOCKLIST_SOURCE = '@zxcvbn-ts/language-common passwords-common';
export const BLOCKLIST_SIZE = BLOCKLIST.size;

export const PASSWORD_MAX_CODE_POINTS = 256;

export interface PolicyContext {
  username: string;
  tenantId: string;
  tenantName?: string;
  /** 8 code points suffice when the account has a second factor, else 15. */
  hasSecondFactor: boolean;
}

/**
 * NIST SP 800-63B-4 password rules: length in code points after NFC (15, or 8 with a second
 * factor), at most 256 accepted (no truncation), no composition rules, and a password is refused
 * when it is on the common-password list or contains a context word. Every broken rule is named.
 */
export function checkPasswordPolicy(password: string, context: PolicyContext): FieldError[] {
  const errors: FieldError[] = [];
  const normalised = normalisePassword(password);
  const length = [...normalised].length;
  const minimum = context.hasSecondFactor ? 8 : 15;
  if (length < minimum) errors.push({ path: '/newPassword', message: `must be at least ${minimum} characters (has ${length})` });
  if (length > PASSWORD_MAX_CODE_POINTS) errors.push({ path: '/newPassword', message: `must be at most ${PASSWORD_MAX_CODE_POINTS} characters` });
  const folded = normalised.normalize('NFKC').toLowerCase();
  if (BLOCKLIST.has(folded)) errors.push({ path: '/newPassword', message: 'is on the list of common or breached passwords' });
  const contextWords = [
    ['the username', context.username],
    ['the tenant id', context.tenantId],
    ['the tenant name', context.tenantName],
    ['the service name', 'labvault'],
  ] as const;
  for (const [label, word] of contextWords) {
    const w = word?.normalize('NFKC').toLowerCase().trim();
    if (w && w.length >= 3 && folded.includes(w)) errors.push({ path: '/newPassword', message: `must not contain ${label}` });
  }
  if (length >= minimum && new Set(folded).size < 4) errors.push({ path: '/newPassword', message: 'is too repetitive (fewer than 4 different characters)' });
  return errors;
}
