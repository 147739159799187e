import { DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import { AuditLog } from './audit/audit-log.js';
import { type AppConfig, parseConfig } from './config.js';
import { TenantCrypto } from './crypto/field-cipher.js';
import { TenantKeyring } from './crypto/keyring.js';
import { KeyVaultSecretStore, LocalSecretStore, type SecretStore } from './crypto/secret-store.js';
import type { Authenticator } from './http/pipeline.js';
import { unauthorized } from './http/problem.js';
import { IntegrationService } from './identity/integrations.js';
import { createLogger, type Logger } from './observability/logger.js';
import { OrderService } from './orders/orders.js';
import { createStorageClients, ensureTables, type StorageClients, TABLES } from './storage/clients.js';
import { TenantService } from './tenants/tenants.js';

export interface Services {
  config: AppConfig;
  logger: Logger;
  storage: StorageClients;
  secrets: SecretStore;
  keyring: TenantKeyring;
  crypto: TenantCrypto;
  audit: AuditLog;
  tenants: TenantService;
  integrations: IntegrationService;
  orders: OrderService;
  authenticator: Authenticator;
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
  const keyring = new TenantKeyring(secrets);
  const crypto = new TenantCrypto(keyring);
  const tenantData = storage.table(TABLES.tenantData);
  const audit = new AuditLog(tenantData, { clock });
  const integrations = new IntegrationService(tenantData, audit, clock);
  const authenticator: Authenticator = {
    async authenticate(authorization, request) {
      const match = /^ApiKey ([\x21-\x7e]{1,256})$/.exec(authorization ?? '');
      if (match?.[1]) return integrations.authenticate(match[1], logger, request.correlationId);
      throw unauthorized();
    },
  };
  return {
    config,
    logger,
    storage,
    secrets,
    keyring,
    crypto,
    audit,
    tenants: new TenantService(storage.table(TABLES.platform), tenantData, audit, keyring, clock),
    integrations,
    orders: new OrderService(tenantData, audit, crypto, { clock }),
    authenticator,
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
