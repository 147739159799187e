import { z } from 'zod';

/**
 * Every setting LabVault reads, parsed once at start-up. A missing or invalid setting stops the
 * process with one line that names it (ConfigError.message), never with a stack of zod output.
 */
const environmentSchema = z.enum(['development', 'test', 'production']);

const configSchema = z
  .object({
    LABVAULT_ENVIRONMENT: environmentSchema.default('development'),
    /** Connection string (Azurite, local) or unset when identity-based settings are used. */
    AzureWebJobsStorage: z.string().min(1).optional(),
    /** Identity-based connection (production): the account's service URIs or its name. */
    AzureWebJobsStorage__accountName: z
      .string()
      .regex(/^[a-z0-9]{3,24}$/)
      .optional(),
    AzureWebJobsStorage__blobServiceUri: z.url().optional(),
    AzureWebJobsStorage__queueServiceUri: z.url().optional(),
    AzureWebJobsStorage__tableServiceUri: z.url().optional(),
    /** The read-access secondary: a connection string (development, tests); derived from the account name in production. */
    LABVAULT_STORAGE_SECONDARY: z.string().min(1).optional(),
    LABVAULT_KEY_PROVIDER: z.enum(['keyvault', 'local']).default('local'),
    LABVAULT_KEY_VAULT_URL: z.url().optional(),
    /** The vault's soft-delete retention: destroyed keys are unrecoverable this many days after deletion. */
    LABVAULT_KEY_VAULT_SOFT_DELETE_DAYS: z.coerce.number().int().min(7).max(90).default(90),
    /** Local key store folder (dev/test only). */
    LABVAULT_DATA_DIR: z.string().min(1).default('.labvault'),
    LABVAULT_TASK_HUB: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9]{2,44}$/)
      .default('labvaultlocal'),
    /** Breach clocks in hours (fractions allowed, so tests can run them in seconds). */
    LABVAULT_BREACH_PROCESSOR_DEADLINE_HOURS: z.coerce.number().positive().max(72).default(24),
    LABVAULT_BREACH_REMINDER_HOURS: z
      .string()
      .regex(/^\d+(\.\d+)?(,\d+(\.\d+)?)*$/, 'comma-separated hours')
      .default('12,24'),
    LABVAULT_BREACH_ESCALATION_HOURS: z.coerce.number().positive().max(72).default(47),
    LABVAULT_BREACH_ANALYSIS_REMINDER_HOURS: z.coerce.number().positive().default(24),
    LABVAULT_BREACH_CONTACT: z.string().max(200).default('security-officer@labvault.example'),
    /** Seconds before a failed webhook delivery is tried again (doubling up to an hour, for more than 24 hours). */
    LABVAULT_WEBHOOK_FIRST_RETRY_SECONDS: z.coerce.number().positive().max(10, 'at most 10 seconds').default(10),
    /** Days between recording a termination and the earliest deletion (the tenant's notice and export window). */
    LABVAULT_TERMINATION_NOTICE_DAYS: z.coerce.number().int().min(7, 'at least 7 days').max(365).default(30),
    /** Hours a download link of an export stays valid for tenant users (a staff grant ends it earlier). */
    LABVAULT_EXPORT_LINK_HOURS: z.coerce.number().positive().max(24, 'at most 24 hours').default(24),
    /** Hours a four-eyes approval request stays open before it expires. */
    LABVAULT_APPROVAL_HOURS: z.coerce.number().positive().max(168).default(24),
    /** Days between announcing a change of sub-processors and its taking effect (the tenants' objection window). */
    LABVAULT_SUBPROCESSOR_OBJECTION_DAYS: z.coerce.number().positive().max(365).default(30),
    /** The Azure region the deployment runs in (the Bicep sets it): named in the sub-processor register and the TOMs. */
    LABVAULT_REGION: z.string().max(60).default('local'),
    /** Anomaly scan: the window counts are taken over, and how many earlier windows make a principal's baseline. */
    LABVAULT_ANOMALY_WINDOW_SECONDS: z.coerce.number().int().min(1).max(86400).default(3600),
    LABVAULT_ANOMALY_BASELINE_WINDOWS: z.coerce
      .number()
      .int()
      .min(1)
      .max(24 * 30)
      .default(168),
    /** Patient-record reads in a window that alert when also this many times the principal's baseline. */
    LABVAULT_ANOMALY_READS_MIN: z.coerce.number().int().min(1).default(500),
    LABVAULT_ANOMALY_READS_FACTOR: z.coerce.number().positive().default(10),
    /** Exports and subject-access requests by one principal in a window. */
    LABVAULT_ANOMALY_EXPORTS: z.coerce.number().int().min(1).default(3),
    /** Refused calls (403, 404) by one principal in a window: probing. */
    LABVAULT_ANOMALY_REFUSALS: z.coerce.number().int().min(1).default(50),
    /** Patient-record reads by an operator under a staff grant in a window. */
    LABVAULT_ANOMALY_GRANT_READS: z.coerce.number().int().min(1).default(100),
    /** Windows per day (24 for hourly windows) and the reads at an unusual time of day that alert. */
    LABVAULT_ANOMALY_CYCLE_WINDOWS: z.coerce.number().int().min(1).default(24),
    LABVAULT_ANOMALY_OFFHOURS_READS: z.coerce.number().int().min(1).default(20),
    /** Seconds between a data subject's erasure being confirmed and its execution (the window to cancel it). */
    LABVAULT_SUBJECT_ERASURE_DELAY_SECONDS: z.coerce
      .number()
      .int()
      .min(1)
      .max(30 * 86400)
      .default(86400),
    /** Tests only: breach webhooks may be http://127.0.0.1:<port> or http://[::1]:<port> (never in production). */
    LABVAULT_WEBHOOK_ALLOW_LOOPBACK: z.enum(['true', 'false']).default('false'),
    /** Ports outbound calls (webhooks) may use. */
    LABVAULT_OUTBOUND_ALLOWED_PORTS: z
      .string()
      .regex(/^\d{1,5}(,\d{1,5})*$/, 'comma-separated ports')
      .default('443,8443'),
    /** Comma-separated addresses of reverse proxies whose X-Forwarded-For entries are trusted. */
    LABVAULT_TRUSTED_PROXIES: z
      .string()
      .regex(/^[0-9a-fA-F.:]+(,[0-9a-fA-F.:]+)*$/, 'comma-separated IP addresses')
      .optional(),
  })
  .superRefine((value, ctx) => {
    const identityBased =
      value.AzureWebJobsStorage__accountName !== undefined || value.AzureWebJobsStorage__tableServiceUri !== undefined;
    if (value.AzureWebJobsStorage === undefined && !identityBased) {
      ctx.addIssue({
        code: 'custom',
        path: ['AzureWebJobsStorage'],
        message: 'is required (a connection string, or AzureWebJobsStorage__accountName for identity-based access)',
      });
    }
    if (value.LABVAULT_KEY_PROVIDER === 'keyvault' && value.LABVAULT_KEY_VAULT_URL === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['LABVAULT_KEY_VAULT_URL'],
        message: 'is required when LABVAULT_KEY_PROVIDER is keyvault',
      });
    }
    if (value.LABVAULT_ENVIRONMENT === 'production' && value.LABVAULT_KEY_PROVIDER === 'local') {
      ctx.addIssue({
        code: 'custom',
        path: ['LABVAULT_KEY_PROVIDER'],
        message: 'must be keyvault in production (the local key store is for development only)',
      });
    }
    if (value.LABVAULT_ENVIRONMENT === 'production' && value.LABVAULT_WEBHOOK_ALLOW_LOOPBACK === 'true') {
      ctx.addIssue({
        code: 'custom',
        path: ['LABVAULT_WEBHOOK_ALLOW_LOOPBACK'],
        message: 'must be false in production (loopback webhooks are for local tests)',
      });
    }
    if (value.LABVAULT_ENVIRONMENT === 'production' && value.LABVAULT_SUBPROCESSOR_OBJECTION_DAYS < 14) {
      ctx.addIssue({
        code: 'custom',
        path: ['LABVAULT_SUBPROCESSOR_OBJECTION_DAYS'],
        message: 'at least 14 in production (the tenants need time to object)',
      });
    }
    if (value.LABVAULT_ENVIRONMENT === 'production' && value.LABVAULT_SUBJECT_ERASURE_DELAY_SECONDS < 3600) {
      ctx.addIssue({
        code: 'custom',
        path: ['LABVAULT_SUBJECT_ERASURE_DELAY_SECONDS'],
        message: 'at least 3600 in production (the window to cancel an erasure)',
      });
    }
    if (
      value.LABVAULT_ENVIRONMENT === 'production' &&
      value.AzureWebJobsStorage !== undefined &&
      /AccountKey=/i.test(value.AzureWebJobsStorage)
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['AzureWebJobsStorage'],
        message: 'must not hold an account key in production (use identity-based AzureWebJobsStorage__* settings)',
      });
    }
  });

/** The names of every setting parsed here (docs/settings.md lists each; a test compares them). */
export const SETTING_NAMES: readonly string[] = Object.keys(configSchema.shape);

export type Environment = z.infer<typeof environmentSchema>;

export type StorageSettings = (
  | { kind: 'connectionString'; connectionString: string }
  | { kind: 'identity'; blobServiceUri: string; queueServiceUri: string; tableServiceUri: string }
) & {
  /** Read-access secondary endpoints (RA-GZRS): reads fall back to them, writes never do. */
  secondary?: { tableServiceUri: string; blobServiceUri: string };
};

export interface AppConfig {
  environment: Environment;
  storage: StorageSettings;
  keys: { provider: 'keyvault'; vaultUrl: string } | { provider: 'local'; directory: string };
  dataDir: string;
  taskHub: string;
  keyVaultSoftDeleteDays: number;
  breach: {
    processorDeadlineHours: number;
    reminderHours: number[];
    escalationHours: number;
    analysisReminderHours: number;
    contactPoint: string;
    firstRetrySeconds: number;
  };
  terminationNoticeDays: number;
  exportLinkHours: number;
  approvalHours: number;
  subjectErasureDelaySeconds: number;
  subProcessorObjectionDays: number;
  anomalies: {
    windowSeconds: number;
    baselineWindows: number;
    readsMin: number;
    readsFactor: number;
    exports: number;
    refusals: number;
    grantReads: number;
    cycleWindows: number;
    offHoursReads: number;
  };
  region: string;
  trustedProxies: string[];
  outbound: { allowLoopback: boolean; allowedPorts: number[] };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function endpointsOf(connectionString: string): { tableServiceUri: string; blobServiceUri: string } {
  const parts = new Map(
    connectionString.split(';').map((p) => [p.slice(0, p.indexOf('=')).toLowerCase(), p.slice(p.indexOf('=') + 1)]),
  );
  const table = parts.get('tableendpoint');
  const blob = parts.get('blobendpoint');
  if (!table || !blob)
    throw new ConfigError('Invalid setting LABVAULT_STORAGE_SECONDARY: needs TableEndpoint and BlobEndpoint');
  return { tableServiceUri: table, blobServiceUri: blob };
}

export function parseConfig(env: Record<string, string | undefined>): AppConfig {
  // Empty strings in app settings mean "not set".
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = configSchema.safeParse(present);
  if (!result.success) {
    const issue = result.error.issues[0];
    const setting = issue?.path.join('.') || 'configuration';
    // The message names the setting but never echoes its value (it may be a secret).
    throw new ConfigError(`Invalid setting ${setting}: ${issue?.message ?? 'invalid'}`);
  }
  const c = result.data;
  let storage: StorageSettings;
  const secondary = c.LABVAULT_STORAGE_SECONDARY ? endpointsOf(c.LABVAULT_STORAGE_SECONDARY) : undefined;
  if (c.AzureWebJobsStorage !== undefined) {
    storage = {
      kind: 'connectionString',
      connectionString: c.AzureWebJobsStorage,
      ...(secondary ? { secondary } : {}),
    };
  } else {
    const account = c.AzureWebJobsStorage__accountName;
    const uri = (service: string, explicit: string | undefined): string => {
      if (explicit) return explicit;
      if (!account) throw new ConfigError(`Invalid setting AzureWebJobsStorage__${service}ServiceUri: is required`);
      return `https://${account}.${service}.core.windows.net`;
    };
    storage = {
      kind: 'identity',
      blobServiceUri: uri('blob', c.AzureWebJobsStorage__blobServiceUri),
      queueServiceUri: uri('queue', c.AzureWebJobsStorage__queueServiceUri),
      tableServiceUri: uri('table', c.AzureWebJobsStorage__tableServiceUri),
      // RA-GZRS: the secondary is readable at "{account}-secondary".
      ...(account
        ? {
            secondary: {
              tableServiceUri: `https://${account}-secondary.table.core.windows.net`,
              blobServiceUri: `https://${account}-secondary.blob.core.windows.net`,
            },
          }
        : {}),
    };
  }
  return {
    environment: c.LABVAULT_ENVIRONMENT,
    storage,
    keys:
      c.LABVAULT_KEY_PROVIDER === 'keyvault'
        ? { provider: 'keyvault', vaultUrl: c.LABVAULT_KEY_VAULT_URL as string }
        : { provider: 'local', directory: `${c.LABVAULT_DATA_DIR}/keys` },
    dataDir: c.LABVAULT_DATA_DIR,
    taskHub: c.LABVAULT_TASK_HUB,
    keyVaultSoftDeleteDays: c.LABVAULT_KEY_VAULT_SOFT_DELETE_DAYS,
    breach: {
      processorDeadlineHours: c.LABVAULT_BREACH_PROCESSOR_DEADLINE_HOURS,
      reminderHours: c.LABVAULT_BREACH_REMINDER_HOURS.split(',').map(Number),
      escalationHours: c.LABVAULT_BREACH_ESCALATION_HOURS,
      analysisReminderHours: c.LABVAULT_BREACH_ANALYSIS_REMINDER_HOURS,
      contactPoint: c.LABVAULT_BREACH_CONTACT,
      firstRetrySeconds: c.LABVAULT_WEBHOOK_FIRST_RETRY_SECONDS,
    },
    terminationNoticeDays: c.LABVAULT_TERMINATION_NOTICE_DAYS,
    exportLinkHours: c.LABVAULT_EXPORT_LINK_HOURS,
    approvalHours: c.LABVAULT_APPROVAL_HOURS,
    subjectErasureDelaySeconds: c.LABVAULT_SUBJECT_ERASURE_DELAY_SECONDS,
    subProcessorObjectionDays: c.LABVAULT_SUBPROCESSOR_OBJECTION_DAYS,
    anomalies: {
      windowSeconds: c.LABVAULT_ANOMALY_WINDOW_SECONDS,
      baselineWindows: c.LABVAULT_ANOMALY_BASELINE_WINDOWS,
      readsMin: c.LABVAULT_ANOMALY_READS_MIN,
      readsFactor: c.LABVAULT_ANOMALY_READS_FACTOR,
      exports: c.LABVAULT_ANOMALY_EXPORTS,
      refusals: c.LABVAULT_ANOMALY_REFUSALS,
      grantReads: c.LABVAULT_ANOMALY_GRANT_READS,
      cycleWindows: c.LABVAULT_ANOMALY_CYCLE_WINDOWS,
      offHoursReads: c.LABVAULT_ANOMALY_OFFHOURS_READS,
    },
    region: c.LABVAULT_REGION,
    trustedProxies: c.LABVAULT_TRUSTED_PROXIES ? c.LABVAULT_TRUSTED_PROXIES.split(',') : [],
    outbound: {
      allowLoopback: c.LABVAULT_WEBHOOK_ALLOW_LOOPBACK === 'true',
      allowedPorts: c.LABVAULT_OUTBOUND_ALLOWED_PORTS.split(',').map(Number),
    },
  };
}
