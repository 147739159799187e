import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  blocklistSize,
  checkPasswordPolicy,
  generateInitialPassword,
  hashPassword,
  needsRehash,
  verifyPassword,
} from '../../lib/identity/passwords.js';

const ctx = { username: 'anna.schmidt', tenantId: 'lab-one', tenantName: 'Pathologie Nord', hasSecondFactor: false };
const messages = async (password: string, c = ctx) => (await checkPasswordPolicy(password, c)).map((e) => e.message);

describe('the password policy (NIST SP 800-63B-4)', () => {
  it('needs 15 code points without a second factor: 14 fails, 15 passes', async () => {
    expect(await messages('zq7-vmw4-xk2p-r')).toEqual([]); // 15
    expect(await messages('zq7-vmw4-xk2p-')).toEqual(['must be at least 15 characters (has 14)']);
  });

  it('needs only 8 code points with a second factor', async () => {
    expect(await messages('zq7-vmw4', { ...ctx, hasSecondFactor: true })).toEqual([]);
    expect(await messages('zq7-vmw', { ...ctx, hasSecondFactor: true })).toEqual([
      'must be at least 8 characters (has 7)',
    ]);
  });

  it('counts code points, so 15 emoji pass although they are 30 UTF-16 units', async () => {
    expect(await messages('🐙🦑🐢🦀🐡🐠🐟🐬🐳🐋🦈🐊🦭🦦🪼')).toEqual([]);
    expect(await messages('🐙🦑🐢🦀🐡🐠🐟🐬🐳🐋🦈🐊🦭🦦')).toEqual(['must be at least 15 characters (has 14)']);
  });

  it('normalises to NFC before counting and hashing', async () => {
    const decomposed = 'cafe\u0301-cafe\u0301-cafe\u0301'; // 17 code points decomposed, 14 composed
    expect(await messages(decomposed)).toEqual(['must be at least 15 characters (has 14)']);
    const hash = await hashPassword('caf\u00e9-longer-than-15');
    expect(await verifyPassword(hash, 'cafe\u0301-longer-than-15')).toBe(true);
  });

  it('accepts 64 characters and more, up to 256, and never truncates', async () => {
    const long = 'a-long-and-winding-passphrase-that-keeps-going-on-and-on-for-ever-and-ever';
    expect([...long].length).toBeGreaterThan(64);
    expect(await messages(long)).toEqual([]);
    expect(await messages('xy'.repeat(129))).toContain('must be at most 256 characters');
    const hash = await hashPassword(long);
    expect(await verifyPassword(hash, long.slice(0, 72))).toBe(false);
  });

  it('refuses a blocklisted password of 16 characters from a list of over 40,000', async () => {
    expect(await blocklistSize()).toBeGreaterThanOrEqual(40_000);
    expect(await messages('1qaz2wsx3edc4rfv')).toEqual(['is on the list of common or breached passwords']);
    expect(await messages('1QAZ2WSX3EDC4RFV')).toContain('is on the list of common or breached passwords');
  });

  it('refuses context words and says which', async () => {
    expect(await messages('anna.schmidt-my-secret')).toEqual(['must not contain the username']);
    expect(await messages('welcome-to-lab-one-2026')).toEqual(['must not contain the tenant id']);
    expect(await messages('pathologie nord rocks!')).toEqual(['must not contain the tenant name']);
    expect(await messages('my LabVault password 1')).toEqual(['must not contain the service name']);
  });

  it('reports every broken rule at once', async () => {
    expect(await messages('labvault')).toEqual([
      'must be at least 15 characters (has 8)',
      'must not contain the service name',
    ]);
  });

  it('refuses long but trivial passwords by what zxcvbn finds in them, and names the pattern', async () => {
    expect(await messages('abcdefghijklmnopqrs')).toEqual([
      'is too easy to guess: it is built on a character sequence (like "abcdef" or "13579")',
    ]);
    expect(await messages('aaaaaaaaaaaaaaaaaaaa')).toEqual([
      'is too easy to guess: it is built on repetition (like "aaaa" or "abcabc")',
    ]);
    expect(await messages('sommer2026sommer2026')).toEqual([
      'is too easy to guess: it is built on repetition (like "aaaa" or "abcabc")',
    ]);
    expect((await messages('qwertzuiopasdfghjk')).join(' ')).toContain('keyboard pattern');
    // German words with trivial padding: the German dictionary knows them.
    expect((await messages('Schmetterling1234567')).join(' ')).toContain(
      'common words or passwords with trivial changes',
    );
    expect((await messages('Passwort123456789!')).join(' ')).toContain(
      'common words or passwords with trivial changes',
    );
  });

  it('lets through passphrases and random strings of the same length', async () => {
    expect(await messages('zwölf Boxkämpfer jagen Viktor')).toEqual([]);
    expect(await messages('tx8#Lq-vR2m!Zp0w')).toEqual([]);
  });

  it('has no composition rules: lowercase letters and spaces alone are fine', async () => {
    expect(await messages('correct horse battery staple')).toEqual([]);
  });
});

describe('password hashing', () => {
  it('uses Argon2id with m=19456 KiB, t=2, p=1 in the PHC string', async () => {
    const hash = await hashPassword('correct horse battery staple');
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(needsRehash(hash)).toBe(false);
  });

  it('marks weaker or foreign hashes for an upgrade', async () => {
    expect(needsRehash(await hashPassword('x', { memoryCost: 4096, timeCost: 1 }))).toBe(true);
    expect(needsRehash('$2b$10$abcdefghijklmnopqrstuv')).toBe(true);
  });

  it('makes random initial passwords of 20 characters', async () => {
    const a = generateInitialPassword();
    expect(a).toMatch(/^[a-zA-Z2-9]{20}$/);
    expect(new Set(Array.from({ length: 50 }, () => generateInitialPassword())).size).toBe(50);
  });
});

describe('the password policy on a cold instance', () => {
  afterEach(() => {
    vi.doUnmock('@zxcvbn-ts/core');
    vi.resetModules();
  });

  /** A fresh copy of the policy module, with zxcvbn's estimator counted (and failing `failures` times). */
  async function coldPolicy(failures = 0) {
    const counts = { loads: 0, estimators: 0 };
    vi.resetModules();
    vi.doMock('@zxcvbn-ts/core', async (importOriginal) => {
      const original = await importOriginal<typeof import('@zxcvbn-ts/core')>();
      counts.loads++;
      if (counts.loads <= failures) throw new Error('the dictionaries could not be loaded');
      return {
        ...original,
        ZxcvbnFactory: class extends original.ZxcvbnFactory {
          constructor(...args: ConstructorParameters<typeof original.ZxcvbnFactory>) {
            counts.estimators++;
            super(...args);
          }
        },
      };
    });
    return { policy: await import('../../lib/identity/passwords.js'), counts };
  }

  it('answers fifty checks at once, each right, from one dictionary load and one estimator', async () => {
    const { policy, counts } = await coldPolicy();
    const candidates = ['zwölf Boxkämpfer jagen Viktor', 'password12345678', 'qwertzuiopasdfgh', 'tx8#Lq-vR2m!Zp0w-a'];
    const verdicts = await Promise.all(
      Array.from({ length: 50 }, (_, i) => policy.checkPasswordPolicy(candidates[i % 4] ?? '', ctx)),
    );
    verdicts.forEach((errors, i) => expect(errors.length > 0, candidates[i % 4]).toBe(i % 4 === 1 || i % 4 === 2));
    expect(counts).toEqual({ loads: 1, estimators: 1 });
  });

  it('fails a check closed when the dictionaries cannot be loaded, and loads them again on the next', async () => {
    const { policy } = await coldPolicy(1);
    await expect(policy.checkPasswordPolicy('zwölf Boxkämpfer jagen Viktor', ctx)).rejects.toThrow();
    expect(await policy.checkPasswordPolicy('password12345678', ctx)).not.toEqual([]);
    expect(await policy.checkPasswordPolicy('zwölf Boxkämpfer jagen Viktor', ctx)).toEqual([]);
  });
});
