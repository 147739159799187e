import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import * as OTPAuth from 'otpauth';
import type { RequestMeta } from '../audit/types.js';
import type { TenantCrypto } from '../crypto/field-cipher.js';
import { conflict, notFound, unprocessable } from '../errors.js';
import { landedAlready } from '../storage/conditional-writes.js';
import type { SecurityPolicyService } from './security-policy.js';
import type { UserRow, UserService } from './users.js';

export interface MfaServiceDependencies {
  table: TableClient;
  users: UserService;
  policy: SecurityPolicyService;
  crypto: TenantCrypto;
  clock?: () => Date;
}

const RECOVERY_CODES = 10;
const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');
const newRecoveryCodes = (): string[] => Array.from({ length: RECOVERY_CODES }, () => randomBytes(6).toString('hex'));

/**
 * The second factor: TOTP (RFC 6238) with recovery codes, stored encrypted (secret) and hashed
 * (codes). Enrolling, replacing and removing a factor raise the account's credential epoch, so the
 * account's other sessions end; callers re-authenticate with the password first.
 */
export class MfaService {
  readonly #d: MfaServiceDependencies;
  readonly #clock: () => Date;

  constructor(dependencies: MfaServiceDependencies) {
    this.#d = dependencies;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  /** A new secret to scan (first enrolment, or the replacement of the current one). */
  async begin(realm: string, id: string, meta: RequestMeta): Promise<{ otpauthUri: string; secret: string }> {
    const row = await this.#row(realm, id);
    const secret = new OTPAuth.Secret({ size: 20 });
    const username = await this.#d.crypto.decryptJson<string>(
      { tenant: realm, record: id, field: 'username' },
      row.encUsername,
    );
    const totp = new OTPAuth.TOTP({
      issuer: 'LabVault',
      label: `${realm}:${username}`,
      algorithm: 'SHA1',
      digits: 6,
      period: 30,
      secret,
    });
    const next: UserRow = {
      ...row,
      encPendingTotpSecret: await this.#d.crypto.encryptJson(
        { tenant: realm, record: id, field: 'pendingTotp' },
        secret.base32,
      ),
    };
    delete next.etag;
    await this.#d.users.commitRow(realm, next, row.etag, [
      this.#d.users.event(row.mfaEnabled ? 'user.mfa.replace.start' : 'user.mfa.enrol.start', 'U', id, meta),
    ]);
    return { otpauthUri: totp.toString(), secret: secret.base32 };
  }

  /** Confirms the pending secret with a code: it becomes the factor, with fresh recovery codes. Returns the new epoch. */
  async confirm(
    realm: string,
    id: string,
    code: string,
    meta: RequestMeta,
  ): Promise<{ recoveryCodes: string[]; epoch: number }> {
    const row = await this.#row(realm, id);
    if (!row.encPendingTotpSecret) throw unprocessable('Start the enrolment first (POST /api/me/mfa/totp).');
    const secret = await this.#d.crypto.decryptJson<string>(
      { tenant: realm, record: id, field: 'pendingTotp' },
      row.encPendingTotpSecret,
    );
    const step = this.#totpStep(secret, code);
    if (step === undefined)
      throw unprocessable('The code does not match.', [{ path: '/code', message: 'wrong or expired one-time code' }]);
    const recoveryCodes = newRecoveryCodes();
    const next: UserRow = {
      ...row,
      mfaEnabled: true,
      encTotpSecret: await this.#d.crypto.encryptJson({ tenant: realm, record: id, field: 'totp' }, secret),
      lastTotpStep: step,
      recoveryCodeHashes: JSON.stringify(recoveryCodes.map(sha256)),
      sessionEpoch: (row.sessionEpoch ?? 0) + 1,
      updatedAt: this.#clock().toISOString(),
    };
    delete next.encPendingTotpSecret;
    delete next.etag;
    await this.#d.users.commitRow(realm, next, row.etag, [
      this.#d.users.event(row.mfaEnabled ? 'user.mfa.replace' : 'user.mfa.enrol', 'U', id, meta),
    ]);
    return { recoveryCodes, epoch: next.sessionEpoch ?? 0 };
  }

  /**
   * Removes the second factor (not where the tenant requires one). The password must meet the
   * length rule without a second factor (15 code points), else it is refused. Returns the new epoch.
   */
  async remove(realm: string, id: string, currentPassword: string, meta: RequestMeta): Promise<number> {
    const row = await this.#row(realm, id);
    if (!row.mfaEnabled) throw conflict('No second factor is enrolled.');
    if ((await this.#d.policy.policy(realm)).requireMfa)
      throw conflict('Your tenant requires a second factor: replace it instead of removing it.');
    if ([...currentPassword.normalize('NFC')].length < 15) {
      throw unprocessable('Without a second factor the password needs at least 15 characters: change it first.', [
        { path: '/currentPassword', message: 'shorter than 15 characters' },
      ]);
    }
    const next: UserRow = {
      ...row,
      mfaEnabled: false,
      sessionEpoch: (row.sessionEpoch ?? 0) + 1,
      updatedAt: this.#clock().toISOString(),
    };
    for (const field of [
      'encTotpSecret',
      'encPendingTotpSecret',
      'lastTotpStep',
      'recoveryCodeHashes',
      'etag',
    ] as const)
      delete next[field];
    await this.#d.users.commitRow(realm, next, row.etag, [this.#d.users.event('user.mfa.remove', 'U', id, meta)]);
    return next.sessionEpoch ?? 0;
  }

  /** Ten new recovery codes; the old ones stop working. */
  async regenerateRecoveryCodes(realm: string, id: string, meta: RequestMeta): Promise<{ recoveryCodes: string[] }> {
    const row = await this.#row(realm, id);
    if (!row.mfaEnabled) throw conflict('No second factor is enrolled.');
    const recoveryCodes = newRecoveryCodes();
    const next: UserRow = {
      ...row,
      recoveryCodeHashes: JSON.stringify(recoveryCodes.map(sha256)),
      updatedAt: this.#clock().toISOString(),
    };
    delete next.etag;
    await this.#d.users.commitRow(realm, next, row.etag, [
      this.#d.users.event('user.mfa.recovery-codes', 'U', id, meta),
    ]);
    return { recoveryCodes };
  }

  /** Checks a TOTP code (each time step once) or a recovery code (each once); consumes it. */
  async verify(
    realm: string,
    row: UserRow & { etag: string },
    factor: { totp?: string; recoveryCode?: string },
  ): Promise<boolean> {
    if (!row.mfaEnabled || !row.encTotpSecret) return false;
    const next: UserRow = { ...row };
    delete next.etag;
    if (factor.totp !== undefined) {
      const secret = await this.#d.crypto.decryptJson<string>(
        { tenant: realm, record: row.id, field: 'totp' },
        row.encTotpSecret,
      );
      const step = this.#totpStep(secret, factor.totp);
      if (step === undefined || step <= (row.lastTotpStep ?? -1)) return false;
      next.lastTotpStep = step;
    } else if (factor.recoveryCode !== undefined) {
      const hashes = JSON.parse(row.recoveryCodeHashes ?? '[]') as string[];
      const presented = Buffer.from(sha256(factor.recoveryCode.trim().toLowerCase()), 'hex');
      const index = hashes.findIndex((h) => timingSafeEqual(Buffer.from(h, 'hex'), presented));
      if (index < 0) return false;
      hashes.splice(index, 1);
      next.recoveryCodeHashes = JSON.stringify(hashes);
    } else {
      return false;
    }
    // Unique to this use: tells our own write whose answer was lost from a concurrent use of the same code.
    next.factorUseId = randomBytes(12).toString('hex');
    try {
      await this.#d.table.updateEntity(next, 'Replace', { etag: row.etag });
    } catch (error) {
      return landedAlready(this.#d.table, next, error); // else used concurrently: one of the two wins
    }
    return true;
  }

  async #row(realm: string, id: string): Promise<UserRow & { etag: string }> {
    const row = await this.#d.users.row(realm, id);
    if (!row) throw notFound('No such user.');
    return row;
  }

  #totpStep(secret: string, code: string): number | undefined {
    if (!/^\d{6}$/.test(code)) return undefined;
    const totp = new OTPAuth.TOTP({
      algorithm: 'SHA1',
      digits: 6,
      period: 30,
      secret: OTPAuth.Secret.fromBase32(secret),
    });
    const now = this.#clock().getTime();
    const delta = totp.validate({ token: code, timestamp: now, window: 1 });
    return delta === null ? undefined : Math.floor(now / 30_000) + delta;
  }
}
