import { DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import { AuditAnchors } from './audit/anchors.js';
import { AuditLog } from './audit/audit-log.js';
import { type AppConfig, parseConfig } from './config.js';
import { TenantCrypto } from './crypto/field-cipher.js';
import { TenantKeyring } from './crypto/keyring.js';
import { KeyVaultSecretStore, LocalSecretStore, type SecretStore } from './crypto/secret-store.js';
import type { Authenticator, PipelineServices } from './http/pipeline.js';
import { ApprovalService } from './approvals/approvals.js';
import { AccessRequestService } from './identity/access-requests.js';
import { AuthService } from './identity/auth.js';
import { BruteForceGuard } from './identity/brute-force.js';
import { IntegrationService } from './identity/integrations.js';
import { MfaService } from './identity/mfa.js';
import { RateLimiter } from './identity/rate-limits.js';
import { ContinuationTokens } from './http/continuation.js';
import { RoleService } from './identity/roles.js';
import { SecurityPolicyService } from './identity/security-policy.js';
import { SecurityAlertService } from './identity/security-alerts.js';
import { AnomalyDetector } from './identity/anomalies.js';
import { auditEvent } from './audit/events.js';
import { shardOf, tenantPartition } from './storage/keys.js';
import { SessionService } from './identity/sessions.js';
import { TokenService } from './identity/tokens.js';
import { UserService } from './identity/users.js';
import { DEFAULT_OUTBOUND_POLICY } from './net/outbound.js';
import { createLogger, type Logger } from './observability/logger.js';
import { BackupService } from './backups/backups.js';
import { DeletionService } from './retention/deletion.js';
import { RetentionService } from './retention/retention.js';
import { BreachService } from './breaches/breaches.js';
import { ExportService } from './exports/exports.js';
import { ImageService } from './images/images.js';
import { FhirIntake } from './intake/fhir/service.js';
import { Hl7Intake } from './intake/hl7v2/service.js';
import { LdtIntake } from './intake/ldt/service.js';
import { OrderService } from './orders/orders.js';
import { SubjectRequestService } from './subjects/subject-requests.js';
import { RestrictionRegister } from './subjects/restrictions.js';
import { SubProcessorService } from './subprocessors/sub-processors.js';
import { TomReport } from './compliance/toms.js';
import { CONTAINERS, createStorageClients, ensureTables, type StorageClients, TABLES } from './storage/clients.js';
import { TenantService } from './tenants/tenants.js';

export interface Services {
  config: AppConfig;
  logger: Logger;
  storage: StorageClients;
  secrets: SecretStore;
  keyring: TenantKeyring;
  crypto: TenantCrypto;
  audit: AuditLog;
  /** The audit chains' heads in write-once storage (the hourly `anchorAuditChains` timer). */
  auditAnchors: AuditAnchors;
  tenants: TenantService;
  integrations: IntegrationService;
  orders: OrderService;
  /** The data subjects under restriction (Art. 18), which intake consults for every new order. */
  restrictions: RestrictionRegister;
  /** FHIR R4 intake and reads on top of the orders. */
  fhir: FhirIntake;
  /** HL7 v2 order messages (OML^O21, ORM^O01) on top of the orders. */
  hl7: Hl7Intake;
  /** LDT 3 practice packets of orders. */
  ldt: LdtIntake;
  images: ImageService;
  exports: ExportService;
  /** Data subjects' requests (access, erasure, restriction), answered for the tenant. */
  subjects: SubjectRequestService;
  /** The sub-processor register and its announced changes with objection windows. */
  subProcessors: SubProcessorService;
  /** The technical and organisational measures, read from settings and live state. */
  toms: TomReport;
  breaches: BreachService;
  backups: BackupService;
  retention: RetentionService;
  deletion: DeletionService;
  users: UserService;
  roles: RoleService;
  mfa: MfaService;
  policy: SecurityPolicyService;
  approvals: ApprovalService;
  sessions: SessionService;
  tokens: TokenService;
  guard: BruteForceGuard;
  alerts: SecurityAlertService;
  /** Intrusion detection on the audit log (read volume, export bursts, probing, staff grants). */
  anomalies: AnomalyDetector;
  accessRequests: AccessRequestService;
  auth: AuthService;
  authenticator: Authenticator;
  trustedProxies: readonly string[];
  rateLimiter: RateLimiter;
  continuations: ContinuationTokens;
  recordStaffAccess: PipelineServices['recordStaffAccess'];
  recordRefusal: NonNullable<PipelineServices['recordRefusal']>;
}

export interface ServiceOptions {
  logger?: Logger;
  clock?: () => Date;
  credential?: TokenCredential;
}

/** The composition root: every client and domain service is built here, and only here. */
export async function createServices(config: AppConfig, options: ServiceOptions = {}): Promise<Services> {
  const logger = options.logger ?? createLogger();
  const clock = options.clock ?? (() => new Date());
  const needsCredential = config.storage.kind === 'identity' || config.keys.provider === 'keyvault';
  const credential = options.credential ?? (needsCredential ? new DefaultAzureCredential() : undefined);
  const storage = createStorageClients(config.storage, credential);
  await ensureTables(storage);
  const secrets: SecretStore =
    config.keys.provider === 'keyvault'
      ? new KeyVaultSecretStore(config.keys.vaultUrl, credential as TokenCredential)
      : new LocalSecretStore(config.keys.directory, config.environment);
  const keyring = new TenantKeyring({ secrets });
  const crypto = new TenantCrypto({ keyring });
  const tenantData = storage.table(TABLES.tenantData);
  const auditAnchors = new AuditAnchors({
    table: tenantData,
    container: storage.blobService.getContainerClient(CONTAINERS.auditArchive),
    ...(storage.secondaryBlobService
      ? { secondary: storage.secondaryBlobService.getContainerClient(CONTAINERS.auditArchive) }
      : {}),
    clock,
  });
  const audit = new AuditLog({ table: tenantData, anchors: auditAnchors, clock });
  const platform = storage.table(TABLES.platform);
  // The platform's own pseudonym key (brute-force counters) and the operator realm's keys.
  await keyring.ensureTenantKeys('platform');
  await keyring.ensureTenantKeys('operator');
  const integrations = new IntegrationService({ table: tenantData, audit, clock });
  const restrictions = new RestrictionRegister({ table: tenantData });
  const orders = new OrderService({ table: tenantData, audit, crypto, restrictions, clock });
  const images = new ImageService({ table: tenantData, storage, audit, crypto, keyring, orders, logger, clock });
  const tenants = new TenantService({ platform, tenantData, audit, keyring, clock });
  const roles = new RoleService({ table: tenantData, audit });
  const users = new UserService({ table: tenantData, audit, crypto, roles, clock });
  const policy = new SecurityPolicyService({ table: tenantData, audit });
  const mfa = new MfaService({ table: tenantData, users, policy, crypto, clock });
  const sessions = new SessionService({ table: tenantData, clock });
  const tokens = new TokenService({ secrets, clock });
  const alerts = new SecurityAlertService({ table: platform, logger, clock });
  const guard = new BruteForceGuard({ table: platform, crypto, alerts, clock });
  const accessRequests = new AccessRequestService({ table: tenantData, audit, clock });
  const auth = new AuthService({
    users,
    roles,
    mfa,
    policy,
    sessions,
    tokens,
    guard,
    audit,
    tenants,
    integrations,
    accessRequests,
    logger,
    clock,
  });
  const retention = new RetentionService({ table: tenantData, audit, tenants });
  const exports = new ExportService({
    table: tenantData,
    storage,
    audit,
    orders,
    images,
    users,
    roles,
    integrations,
    tenants,
    logger,
    linkHours: config.exportLinkHours,
    clock,
  });
  const deletion = new DeletionService({
    storage,
    platform,
    tenantData,
    audit,
    orders,
    images,
    tenants,
    retention,
    secrets,
    keyring,
    keyVaultSoftDeleteDays: config.keyVaultSoftDeleteDays,
    terminationNoticeDays: config.terminationNoticeDays,
    logger,
    clock,
  });
  const subProcessors = new SubProcessorService({
    platform,
    tenantData,
    audit,
    tenants,
    objectionDays: config.subProcessorObjectionDays,
    initial: [
      {
        // The one sub-processor every deployment has: the cloud it runs in, in the region it was deployed to.
        name: 'Microsoft Ireland Operations Limited (Microsoft Azure)',
        purpose: 'Hosting: Azure Functions, Azure Storage (tables, blobs, queues), Azure Key Vault, Azure Monitor',
        location: config.region,
        dataCategories: [
          'orders (encrypted)',
          'specimen images (encrypted)',
          'audit entries (pseudonymous)',
          'accounts',
        ],
        safeguards:
          'Region fixed by the deployment (EU regions only); personal fields and images encrypted with keys from Key Vault before storage; Microsoft Products and Services Data Protection Addendum',
      },
    ],
    clock,
  });
  const backups = new BackupService({ storage, secrets, logger, clock });
  const authenticator: Authenticator = {
    authenticate: (authorization, request) =>
      auth.authenticate(authorization, {
        source: request.clientAddress,
        correlationId: request.correlationId,
        tenantHeader: request.tenantHeader,
      }),
  };
  return {
    config,
    logger,
    storage,
    secrets,
    keyring,
    crypto,
    audit,
    auditAnchors,
    tenants,
    integrations,
    orders,
    restrictions,
    fhir: new FhirIntake({ orders }),
    hl7: new Hl7Intake({ orders, clock }),
    ldt: new LdtIntake({ orders }),
    images,
    exports,
    subjects: new SubjectRequestService({
      table: tenantData,
      storage,
      audit,
      crypto,
      orders,
      restrictions,
      images,
      exports,
      retention,
      deletion,
      journal: backups,
      logger,
      erasureDelaySeconds: config.subjectErasureDelaySeconds,
      clock,
    }),
    backups,
    retention,
    deletion,
    breaches: new BreachService({
      platform,
      tenantData,
      audit,
      crypto,
      tenants,
      alerts,
      logger,
      config: config.breach,
      outbound: {
        ...DEFAULT_OUTBOUND_POLICY,
        allowLoopback: config.outbound.allowLoopback,
        allowedPorts: config.outbound.allowedPorts,
      },
      clock,
    }),
    subProcessors,
    toms: new TomReport({ config, secrets, storage, audit, backups, retention, policy, subProcessors, clock }),
    users,
    roles,
    mfa,
    policy,
    approvals: new ApprovalService({ platform, audit, approvalHours: config.approvalHours, clock }),
    sessions,
    tokens,
    guard,
    alerts,
    accessRequests,
    auth,
    authenticator,
    trustedProxies: config.trustedProxies,
    rateLimiter: new RateLimiter({ table: platform, clock }),
    continuations: new ContinuationTokens({ secrets }),
    recordStaffAccess: (principal, operationId, correlationId, actor) =>
      accessRequests.recordCall(principal, operationId, { actor, correlationId }),
    // In the realm the caller reached for (an operator without a grant: the operator realm), spread
    // over shards by principal so a flood of refusals does not queue on one audit stream.
    recordRefusal: async (principal, operationId, status, correlationId, actor) => {
      const realm = principal.tenant ?? principal.realm;
      await audit.record(realm, tenantPartition(realm, 'refusals', shardOf(principal.id)), [
        auditEvent(
          'access.denied',
          'E',
          { type: 'Operation', id: operationId },
          { actor, correlationId },
          {
            outcome: 'failure',
            details: { status },
          },
        ),
      ]);
    },
    anomalies: new AnomalyDetector({
      tenantData,
      audit,
      alerts,
      tenants,
      thresholds: config.anomalies,
      isBeingDeleted: async (realm) => ['deleting', 'completed'].includes((await deletion.state(realm))?.status ?? ''),
      clock,
    }),
  };
}

let appServices: Promise<Services> | undefined;

/**
 * The function app's services, built once from the app settings on first use. Azure Functions
 * gives Node apps no container to hand dependencies to handlers, so this one accessor is the seam;
 * tests build their own with createServices.
 */
export function getServices(): Promise<Services> {
  appServices ??= createServices(parseConfig(process.env)).catch((error: unknown) => {
    appServices = undefined;
    throw error;
  });
  return appServices;
}
