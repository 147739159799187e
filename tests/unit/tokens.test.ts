import { createHmac, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader, exportJWK, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { LocalSecretStore } from '../../lib/crypto/secret-store.js';
import { UnauthenticatedError } from '../../lib/errors.js';
import { TokenService } from '../../lib/identity/tokens.js';

let now = new Date('2026-11-27T10:00:00Z');
const store = new LocalSecretStore(mkdtempSync(join(tmpdir(), 'labvault-tokens-')), 'test');
const tokens = new TokenService({ secrets: store, clock: () => now });
const claims = { sub: 'u1', realm: 'lab-one', sid: 's1', scope: 'full' as const };
let good: string;

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
async function rejected(token: string): Promise<boolean> {
  try {
    await tokens.verify(token);
    return false;
  } catch (error) {
    expect(error).toBeInstanceOf(UnauthenticatedError);
    return true;
  }
}

/** A well-formed token with our kid and claims, signed by a key that is not ours. */
function forge(privateKey: Parameters<SignJWT['sign']>[0], extraHeader: Record<string, unknown>): Promise<string> {
  const t = Math.floor(now.getTime() / 1000);
  return new SignJWT({ realm: 'lab-one', sid: 's1', scope: 'full' })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: decodeProtectedHeader(good).kid as string, ...extraHeader })
    .setIssuer('https://labvault.example/auth')
    .setAudience('labvault-api')
    .setSubject('u1')
    .setIssuedAt(t)
    .setNotBefore(t)
    .setExpirationTime(t + 600)
    .setJti('x')
    .sign(privateKey);
}

describe('access tokens', () => {
  beforeAll(async () => {
    good = (await tokens.issue(claims)).token;
  });

  it('verify when untouched, with a 15-minute lifetime and a key id', async () => {
    expect(await tokens.verify(good)).toEqual(claims);
    const payload = decodeJwt(good);
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(900);
    expect(decodeProtectedHeader(good)).toMatchObject({
      alg: 'ES256',
      typ: 'at+jwt',
      kid: expect.stringMatching(/^[0-9a-f]{32}$/),
    });
  });

  it('refuse a tampered payload or signature', async () => {
    const [h, , s] = good.split('.');
    expect(await rejected(`${h}.${b64({ ...decodeJwt(good), realm: 'other-lab' })}.${s}`)).toBe(true);
    expect(await rejected(good.slice(0, -3) + (good.endsWith('A') ? 'BBB' : 'AAA'))).toBe(true);
  });

  it('refuse expired and not-yet-valid tokens', async () => {
    const saved = now;
    now = new Date(saved.getTime() + 16 * 60 * 1000);
    expect(await rejected(good)).toBe(true);
    now = new Date(saved.getTime() - 60 * 1000);
    expect(await rejected(good)).toBe(true);
    now = saved;
  });

  it('refuse alg "none"', async () => {
    const header = { ...decodeProtectedHeader(good), alg: 'none' };
    expect(await rejected(`${b64(header)}.${good.split('.')[1]}.`)).toBe(true);
  });

  it('refuse HS256 signed with the public key (algorithm confusion)', async () => {
    const header = { ...decodeProtectedHeader(good), alg: 'HS256' };
    const kid = header.kid as string;
    const secret = await store.get('token-signing-key', kid);
    const { d: _d, ...publicJwk } = JSON.parse(Buffer.from(secret?.value ?? '', 'base64').toString()) as Record<
      string,
      string
    >;
    const signingInput = `${b64(header)}.${good.split('.')[1]}`;
    const mac = createHmac('sha256', JSON.stringify(publicJwk)).update(signingInput).digest('base64url');
    expect(await rejected(`${signingInput}.${mac}`)).toBe(true);
  });

  it('refuse a token signed by another key, even with our kid', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const forged = await forge(privateKey, {});
    expect(await rejected(forged)).toBe(true);
  });

  it('refuse jku, jwk and x5u headers that point at an attacker key', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    for (const extra of [
      { jku: 'https://evil.example/jwks' },
      { jwk: await exportJWK(publicKey) },
      { x5u: 'https://evil.example/cert' },
    ]) {
      const forged = await forge(privateKey, extra);
      expect(await rejected(forged)).toBe(true);
    }
  });

  it('refuse a wrong audience, issuer or type, even when signed with our key', async () => {
    const secret = await store.get('token-signing-key');
    const jwk = JSON.parse(Buffer.from(secret?.value ?? '', 'base64').toString()) as Record<string, string>;
    const { importJWK } = await import('jose');
    const key = await importJWK(jwk, 'ES256');
    const t = Math.floor(now.getTime() / 1000);
    const make = (audience: string, issuer: string, typ: string) =>
      new SignJWT({ realm: 'lab-one', sid: 's1', scope: 'full' })
        .setProtectedHeader({ alg: 'ES256', typ, kid: secret?.version ?? '' })
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject('u1')
        .setIssuedAt(t)
        .setNotBefore(t)
        .setExpirationTime(t + 600)
        .setJti('x')
        .sign(key);
    expect(await tokens.verify(await make('labvault-api', 'https://labvault.example/auth', 'at+jwt'))).toMatchObject({
      sub: 'u1',
    });
    expect(await rejected(await make('another-api', 'https://labvault.example/auth', 'at+jwt'))).toBe(true);
    expect(await rejected(await make('labvault-api', 'https://evil.example', 'at+jwt'))).toBe(true);
    expect(await rejected(await make('labvault-api', 'https://labvault.example/auth', 'JWT'))).toBe(true);
  });

  it('keep verifying old tokens after a key rotation and sign new ones with the new key', async () => {
    const oldKid = decodeProtectedHeader(good).kid;
    const newKid = await tokens.rotateSigningKey();
    const fresh = (await tokens.issue(claims)).token;
    expect(decodeProtectedHeader(fresh).kid).toBe(newKid);
    expect(newKid).not.toBe(oldKid);
    expect(await tokens.verify(good)).toEqual(claims);
    expect(await tokens.verify(fresh)).toEqual(claims);
  });
});
