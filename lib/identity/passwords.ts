import { randomInt } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';
import type { ZxcvbnFactory } from '@zxcvbn-ts/core';
import type { FieldError } from '../errors.js';

// @node-rs/argon2's Algorithm is a const enum; its Argon2id member is 2.
const ARGON2ID = 2;

/** OWASP's Argon2id baseline: m = 19 MiB, t = 2, p = 1. */
const ARGON2_TARGET = { memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

export interface PasswordHasherOptions {
  memoryCost?: number;
  timeCost?: number;
}

/** NFC, as NIST SP 800-63B asks before hashing; never truncated. */
function normalisePassword(password: string): string {
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
  return (
    Number(m[1]) < ARGON2_TARGET.memoryCost ||
    Number(m[2]) < ARGON2_TARGET.timeCost ||
    Number(m[3]) !== ARGON2_TARGET.parallelism
  );
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

const PASSWORD_MAX_CODE_POINTS = 256;
const PASSWORD_MIN_CODE_POINTS = { withoutSecondFactor: 15, withSecondFactor: 8 } as const;

/**
 * Guess estimates below which a password is refused, as log10 of the guesses zxcvbn estimates:
 * 10^10 without a second factor (zxcvbn's score 4), 10^8 with one (score 3, an 8-character minimum).
 */
const GUESSES_FLOOR_LOG10 = { withoutSecondFactor: 10, withSecondFactor: 8 } as const;

interface PasswordDictionaries {
  /** zxcvbn's common-password list, folded (NFKC, lower case). */
  blocklist: ReadonlySet<string>;
  /**
   * zxcvbn-ts with the common, English and German dictionaries: it recognises sequences, keyboard
   * walks, repetitions, dates and dictionary words under trivial changes (l33t, case, reversal,
   * padding), which a blocklist alone cannot. Built on first use: ranking the dictionaries takes a while.
   */
  strength(): ZxcvbnFactory;
}

let dictionaries: Promise<PasswordDictionaries> | undefined;

/**
 * Loaded on the first password check, not when an instance starts: the dictionaries are about 20 MB
 * of heap that every garbage collection would otherwise mark again, on instances that mostly take
 * orders and images and seldom see a new password.
 */
function passwordDictionaries(): Promise<PasswordDictionaries> {
  dictionaries ??= (async () => {
    const [{ ZxcvbnFactory }, common, english, german] = await Promise.all([
      import('@zxcvbn-ts/core'),
      import('@zxcvbn-ts/language-common'),
      import('@zxcvbn-ts/language-en'),
      import('@zxcvbn-ts/language-de'),
    ]);
    let estimator: ZxcvbnFactory | undefined;
    return {
      blocklist: new Set(common.dictionary['passwords-common'].map((p) => p.normalize('NFKC').toLowerCase())),
      strength: () =>
        (estimator ??= new ZxcvbnFactory({
          dictionary: { ...common.dictionary, ...english.dictionary, ...german.dictionary },
          graphs: common.adjacencyGraphs,
          translations: english.translations,
        })),
    };
  })();
  // A failed load fails this check closed (the caller answers 500, nothing is accepted unchecked) and
  // is not kept: the next check loads again instead of every password change failing until a restart.
  dictionaries.catch(() => (dictionaries = undefined));
  return dictionaries;
}

/** How many passwords the common-password list refuses. */
export async function blocklistSize(): Promise<number> {
  return (await passwordDictionaries()).blocklist.size;
}

/** What each weak zxcvbn pattern means, in the words of the 422 (the rule that failed). */
const PATTERN_RULES: Record<string, string> = {
  sequence: 'is built on a character sequence (like "abcdef" or "13579")',
  spatial: 'is built on a keyboard pattern (like "qwertz" or "asdf")',
  repeat: 'is built on repetition (like "aaaa" or "abcabc")',
  dictionary: 'is built on common words or passwords with trivial changes (padding, digits, case, l33t)',
  date: 'is built on a date',
  regex: 'is built on a predictable pattern (like a recent year)',
};

export interface PolicyContext {
  username: string;
  tenantId: string;
  tenantName?: string;
  /** 8 code points suffice when the account has a second factor, else 15. */
  hasSecondFactor: boolean;
}

/**
 * NIST SP 800-63B-4 password rules: length in code points after NFC (15, or 8 with a second
 * factor), at most 256 accepted (no truncation), no composition rules; refused when on the
 * common-password list, when it contains a context word, or when zxcvbn estimates fewer guesses
 * than the floor (sequences, keyboard walks, repetitions, padded common words). Every broken
 * rule is named.
 */
export async function checkPasswordPolicy(password: string, context: PolicyContext): Promise<FieldError[]> {
  const { blocklist, strength } = await passwordDictionaries();
  const errors: FieldError[] = [];
  const normalised = normalisePassword(password);
  const length = [...normalised].length;
  const minimum = context.hasSecondFactor
    ? PASSWORD_MIN_CODE_POINTS.withSecondFactor
    : PASSWORD_MIN_CODE_POINTS.withoutSecondFactor;
  if (length < minimum)
    errors.push({ path: '/newPassword', message: `must be at least ${minimum} characters (has ${length})` });
  if (length > PASSWORD_MAX_CODE_POINTS)
    errors.push({ path: '/newPassword', message: `must be at most ${PASSWORD_MAX_CODE_POINTS} characters` });
  const folded = normalised.normalize('NFKC').toLowerCase();
  const blocklisted = blocklist.has(folded);
  if (blocklisted) errors.push({ path: '/newPassword', message: 'is on the list of common or breached passwords' });
  const contextWords = [
    ['the username', context.username],
    ['the tenant id', context.tenantId],
    ['the tenant name', context.tenantName],
    ['the service name', 'labvault'],
  ] as const;
  let containsContextWord = false;
  for (const [label, word] of contextWords) {
    const w = word?.normalize('NFKC').toLowerCase().trim();
    if (w && w.length >= 3 && folded.includes(w)) {
      errors.push({ path: '/newPassword', message: `must not contain ${label}` });
      containsContextWord = true;
    }
  }
  // The estimate says something only about passwords that passed the cheaper rules.
  if (errors.length === 0 && length <= PASSWORD_MAX_CODE_POINTS && !blocklisted && !containsContextWord) {
    const result = strength().check(normalised);
    const floor = context.hasSecondFactor
      ? GUESSES_FLOOR_LOG10.withSecondFactor
      : GUESSES_FLOOR_LOG10.withoutSecondFactor;
    if (result.guessesLog10 < floor) {
      const patterns = [...new Set(result.sequence.map((m) => m.pattern).filter((p) => p in PATTERN_RULES))];
      if (patterns.length === 0) errors.push({ path: '/newPassword', message: 'is too easy to guess' });
      for (const pattern of patterns)
        errors.push({
          path: '/newPassword',
          message: `is too easy to guess: it ${PATTERN_RULES[pattern] ?? 'is predictable'}`,
        });
    }
  }
  return errors;
}

/** The password rules in force, as the TOM report states them (read from the constants above). */
export async function passwordPolicy() {
  return {
    standard: 'NIST SP 800-63B-4',
    minCodePoints: PASSWORD_MIN_CODE_POINTS,
    maxCodePoints: PASSWORD_MAX_CODE_POINTS,
    guessesFloorLog10: GUESSES_FLOOR_LOG10,
    blocklistEntries: await blocklistSize(),
    hash: { algorithm: 'Argon2id', ...ARGON2_TARGET },
  } as const;
}
