import { randomUUID } from 'node:crypto';
import { decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, type JWK, jwtVerify, SignJWT } from 'jose';
import type { SecretStore } from '../crypto/secret-store.js';
import { unauthenticated } from '../errors.js';
import type { TokenScope } from './permissions.js';

const ACCESS_TOKEN_SECONDS = 15 * 60;
const ISSUER = 'https://labvault.example/auth';
const AUDIENCE = 'labvault-api';
const TYPE = 'at+jwt';
const ALGORITHM = 'ES256';
const SIGNING_SECRET = 'token-signing-key';
// Header parameters that would let a token name its own key: never honoured, always refused.
const FORBIDDEN_HEADERS = ['jku', 'jwk', 'x5u', 'x5c', 'crit'];

export interface AccessClaims {
  sub: string;
  /** Tenant id, or "operator" for the vendor's staff. */
  realm: string;
  sid: string;
  scope: TokenScope;
}

type KeyLike = Awaited<ReturnType<typeof importJWK>>;

/**
 * Access tokens: ES256 JWTs, 15 minutes, signed with a key from the key provider whose secret
 * version is the `kid`; a rotation adds a version and older tokens still verify until they expire.
 * Verification pins the algorithm, issuer, audience and type.
 */
export class TokenService {
  readonly #secrets: SecretStore;
  readonly #clock: () => Date;
  readonly #publicKeys = new Map<string, KeyLike>();
  #current: Promise<{ kid: string; key: KeyLike }> | undefined;

  constructor(dependencies: { secrets: SecretStore; clock?: () => Date }) {
    this.#secrets = dependencies.secrets;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  async rotateSigningKey(): Promise<string> {
    const { privateKey } = await generateKeyPair(ALGORITHM, { extractable: true });
    const jwk = await exportJWK(privateKey);
    const created = await this.#secrets.set(SIGNING_SECRET, Buffer.from(JSON.stringify(jwk)).toString('base64'));
    this.#current = undefined;
    return created.version;
  }

  async issue(claims: AccessClaims): Promise<{ token: string; expiresIn: number }> {
    const { kid, key } = await this.#signingKey();
    const now = Math.floor(this.#clock().getTime() / 1000);
    const token = await new SignJWT({ realm: claims.realm, sid: claims.sid, scope: claims.scope })
      .setProtectedHeader({ alg: ALGORITHM, kid, typ: TYPE })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(claims.sub)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + ACCESS_TOKEN_SECONDS)
      .setJti(randomUUID())
      .sign(key);
    return { token, expiresIn: ACCESS_TOKEN_SECONDS };
  }

  /** Verifies a bearer token; any defect is the same 401. */
  async verify(token: string): Promise<AccessClaims> {
    try {
      const header = decodeProtectedHeader(token);
      if (
        header.alg !== ALGORITHM ||
        header.typ !== TYPE ||
        typeof header.kid !== 'string' ||
        !/^[0-9a-zA-Z]{1,64}$/.test(header.kid)
      )
        throw new Error('header');
      if (FORBIDDEN_HEADERS.some((h) => h in header)) throw new Error('header');
      const key = await this.#verificationKey(header.kid);
      const { payload } = await jwtVerify(token, key, {
        algorithms: [ALGORITHM],
        issuer: ISSUER,
        audience: AUDIENCE,
        typ: TYPE,
        currentDate: this.#clock(),
        maxTokenAge: ACCESS_TOKEN_SECONDS + 5,
        clockTolerance: 5,
        requiredClaims: ['sub', 'exp', 'iat', 'nbf', 'jti'],
      });
      const { sub, realm, sid, scope } = payload as Record<string, unknown>;
      if (typeof sub !== 'string' || typeof realm !== 'string' || typeof sid !== 'string') throw new Error('claims');
      if (scope !== 'full' && scope !== 'password-change' && scope !== 'mfa-enrolment') throw new Error('claims');
      return { sub, realm, sid, scope };
    } catch {
      throw unauthenticated();
    }
  }

  async #signingKey(): Promise<{ kid: string; key: KeyLike }> {
    this.#current ??= (async () => {
      let secret = await this.#secrets.get(SIGNING_SECRET);
      if (!secret) {
        await this.rotateSigningKey();
        secret = await this.#secrets.get(SIGNING_SECRET);
      }
      if (!secret) throw new Error('no token signing key');
      const jwk = JSON.parse(Buffer.from(secret.value, 'base64').toString('utf8')) as JWK;
      return { kid: secret.version, key: await importJWK(jwk, ALGORITHM) };
    })().catch((error: unknown) => {
      this.#current = undefined;
      throw error;
    });
    return this.#current;
  }

  async #verificationKey(kid: string): Promise<KeyLike> {
    const cached = this.#publicKeys.get(kid);
    if (cached) return cached;
    const secret = await this.#secrets.get(SIGNING_SECRET, kid);
    if (!secret) throw new Error('unknown kid');
    const { d: _private, ...publicJwk } = JSON.parse(Buffer.from(secret.value, 'base64').toString('utf8')) as JWK;
    const key = await importJWK(publicJwk, ALGORITHM);
    this.#publicKeys.set(kid, key);
    return key;
  }
}

/** Access tokens as the TOM report states them. */
export const ACCESS_TOKEN_POLICY = { algorithm: ALGORITHM, lifetimeSeconds: ACCESS_TOKEN_SECONDS, type: TYPE } as const;
