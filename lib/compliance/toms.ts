import type { AuditLog } from '../audit/audit-log.js';
import { BACKUP_SCHEDULE, type BackupService } from '../backups/backups.js';
import type { AppConfig } from '../config.js';
import { TenantKeyring } from '../crypto/keyring.js';
import type { SecretStore } from '../crypto/secret-store.js';
import { STAFF_GRANT_MAX_MINUTES } from '../identity/access-requests.js';
import { BRUTE_FORCE_POLICY } from '../identity/brute-force.js';
import { passwordPolicy } from '../identity/passwords.js';
import { GRANTABLE_PERMISSIONS, OPERATOR_REALM } from '../identity/permissions.js';
import type { SecurityPolicyService } from '../identity/security-policy.js';
import { SESSION_POLICY } from '../identity/sessions.js';
import { ACCESS_TOKEN_POLICY } from '../identity/tokens.js';
import type { RetentionService } from '../retention/retention.js';
import type { StorageClients } from '../storage/clients.js';
import type { SubProcessorService } from '../subprocessors/sub-processors.js';

export interface TomDependencies {
  config: AppConfig;
  secrets: SecretStore;
  storage: StorageClients;
  audit: AuditLog;
  backups: BackupService;
  retention: RetentionService;
  policy: SecurityPolicyService;
  subProcessors: SubProcessorService;
  clock?: () => Date;
}

/**
 * The technical and organisational measures (Art. 32 GDPR) as they are in effect: every value is
 * read from the settings, the policy constants the code enforces, or the live state (key versions,
 * storage account, backups and drills, the audit chain, the sub-processor register) at the moment
 * of the request. Nothing in it is prose about what should be.
 */
export class TomReport {
  readonly #d: TomDependencies;
  readonly #clock: () => Date;

  constructor(dependencies: TomDependencies) {
    this.#d = dependencies;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  async report(realm: string): Promise<Record<string, unknown>> {
    const { config } = this.#d;
    const keys = await Promise.all(
      (['data', 'pseudonym'] as const).map(async (purpose) => {
        const secret = await this.#d.secrets.get(TenantKeyring.secretName(realm, purpose));
        return { purpose, version: secret?.version ?? null, createdOn: secret?.createdOn ?? null };
      }),
    );
    const account = await this.#d.storage.blobService.getAccountInfo().catch(() => undefined);
    const backups = await this.#d.backups.list();
    const latest = [...backups].sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0];
    const drilled = backups
      .filter((b) => b.lastDrill !== null)
      .sort((a, b) => (b.lastDrill?.at ?? '').localeCompare(a.lastDrill?.at ?? ''))[0];
    const chain = await this.#d.audit.verify(realm);
    const isTenant = realm !== OPERATOR_REALM;
    return {
      generatedAt: this.#clock().toISOString(),
      realm,
      environment: config.environment,
      region: config.region,
      encryption: {
        fields: 'AES-256-GCM, random 96-bit nonce, bound to tenant, record and field (additional data)',
        images: 'AES-256-GCM in 64 KiB chunks, bound to tenant, image and kind',
        keyProvider: config.keys.provider === 'keyvault' ? 'Azure Key Vault' : 'local development key store',
        keys,
      },
      pseudonymisation: {
        algorithm: 'HMAC-SHA256 with a key per tenant',
        identifiers: ['patient id', 'order external id', 'login names in counters'],
      },
      storage: {
        sku: account?.skuName ?? null,
        kind: account?.accountKind ?? null,
        connection: config.storage.kind,
      },
      backups: {
        schedule: BACKUP_SCHEDULE,
        count: backups.length,
        latest: latest ? { backupId: latest.backupId, createdAt: latest.createdAt, tables: latest.tables } : null,
        lastRestoreDrill: drilled?.lastDrill ? { backupId: drilled.backupId, ...drilled.lastDrill } : null,
        restore:
          "into an empty account, every table's checksums verified first; then every patient's erasure completed (or failed after it began) since the backup's day applied again",
        erasuresRecordedForRestore: await this.#d.backups.erasuresRecorded(isTenant ? realm : undefined),
      },
      retention: isTenant
        ? { policy: await this.#d.retention.policy(realm), bounds: await this.#d.retention.bounds(realm) }
        : null,
      authentication: {
        passwords: await passwordPolicy(),
        secondFactorRequired: (await this.#d.policy.policy(realm)).requireMfa,
        sessions: SESSION_POLICY,
        accessTokens: ACCESS_TOKEN_POLICY,
        lockout: {
          freeFailures: BRUTE_FORCE_POLICY.freeFailures,
          maxBackoffSeconds: BRUTE_FORCE_POLICY.maxBackoffSeconds,
          lockAfterFailures: BRUTE_FORCE_POLICY.lockAfterFailures,
          sourceAttemptsPer10Minutes: BRUTE_FORCE_POLICY.sourceAttemptsPerWindow,
          sprayingAlertAccounts: BRUTE_FORCE_POLICY.sprayingAccounts,
          stuffingAlertSources: BRUTE_FORCE_POLICY.stuffingSources,
        },
      },
      auditChain: { ...chain, verifiedAt: this.#clock().toISOString() },
      staffAccess: {
        grantablePermissions: GRANTABLE_PERMISSIONS,
        maxMinutes: STAFF_GRANT_MAX_MINUTES,
        approvedBy: 'the tenant (permission access-requests:approve), revocable at once',
        logging: "every call under a grant, in the tenant's audit log",
      },
      irreversibleActions: {
        fourEyesApprovalHours: config.approvalHours,
        terminationNoticeDays: config.terminationNoticeDays,
        subjectErasureDelaySeconds: config.subjectErasureDelaySeconds,
      },
      subProcessors: (await this.#d.subProcessors.register()).current,
    };
  }
}

const escape = (value: string) =>
  value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

/** The report as a printable HTML page: every section a table, values escaped, no script, no style from outside. */
export function renderTomsHtml(report: Record<string, unknown>): string {
  const cell = (value: unknown): string => {
    if (value === null || value === undefined) return '<em>none</em>';
    if (Array.isArray(value))
      return value.every((v) => typeof v !== 'object')
        ? escape(value.join(', '))
        : value.map((v) => cell(v)).join('<hr>');
    if (typeof value === 'object') return table(value as Record<string, unknown>);
    return escape(String(value));
  };
  const table = (object: Record<string, unknown>): string =>
    `<table>${Object.entries(object)
      .map(([k, v]) => `<tr><th scope="row">${escape(k)}</th><td>${cell(v)}</td></tr>`)
      .join('')}</table>`;
  const sections = Object.entries(report)
    .filter(([, v]) => typeof v === 'object' && v !== null)
    .map(([k, v]) => `<section><h2>${escape(k)}</h2>${cell(v)}</section>`)
    .join('\n');
  const head = Object.entries(report)
    .filter(([, v]) => typeof v !== 'object' || v === null)
    .map(([k, v]) => `<tr><th scope="row">${escape(k)}</th><td>${cell(v)}</td></tr>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Technical and organisational measures</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2rem}table{border-collapse:collapse;margin:.3rem 0}th,td{border:1px solid #999;padding:.2rem .4rem;text-align:left;vertical-align:top}h2{margin-top:1.5rem}</style>
</head><body><h1>Technical and organisational measures (Art. 32 GDPR)</h1>
<p>Read from the running system's settings and state when this page was made.</p>
<table>${head}</table>
${sections}
</body></html>
`;
}
