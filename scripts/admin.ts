// `npm run admin -- <area> <command> [--flag value]`: operator tasks against the same storage and
// keys as the running local host (through ${LABVAULT_DATA_DIR}/local-host.json) or the configured
// AzureWebJobsStorage. Prints exactly one JSON object on stdout; diagnostics go to stderr.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { ConfigError, parseConfig } from '../lib/config.js';
import { ProblemError } from '../lib/http/problem.js';
import { line, tenantId } from '../lib/http/schemas.js';
import { tenantCreateSchema } from '../lib/identity/api.js';
import { OPERATOR_REALM, permissionSchema } from '../lib/identity/permissions.js';
import { onboardTenant } from '../lib/tenants/onboarding.js';
import { localSettings } from '../lib/local-host/host.js';
import { createLogger } from '../lib/observability/logger.js';
import { createServices } from '../lib/services.js';
import { createStorageClients } from '../lib/storage/clients.js';

const USAGE = `usage:
  npm run admin -- tenant create --id <id> --name <name> [--admin-username <u> --admin-email <e>]
  npm run admin -- integration create --tenant <id> --name <name> --permissions orders:create,orders:read
  npm run admin -- integration revoke --tenant <id> --id <integration-id>
  npm run admin -- audit verify --tenant <id>
  npm run admin -- operator unlock --username <name>
  npm run admin -- backup create
  npm run admin -- backup restore <backup-id> --target <connection string of an empty account>`;

class UsageError extends Error {}

function settings(): Record<string, string | undefined> {
  const env = localSettings();
  const dataDir = resolve(env.LABVAULT_DATA_DIR || '.labvault');
  env.LABVAULT_DATA_DIR = dataDir;
  if (!env.AzureWebJobsStorage && !env.AzureWebJobsStorage__accountName) {
    try {
      const info = JSON.parse(readFileSync(join(dataDir, 'local-host.json'), 'utf8')) as { storageConnectionString?: string };
      env.AzureWebJobsStorage = info.storageConnectionString;
    } catch {
      throw new ConfigError(`Invalid setting AzureWebJobsStorage: not set, and no running local host (${join(dataDir, 'local-host.json')}); run npm start first`);
    }
  }
  return env;
}

function parse<T extends z.ZodType>(schema: T, value: unknown, flag: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new UsageError(`--${flag}: ${result.error.issues[0]?.message ?? 'invalid'}`);
  return result.data;
}

async function main(argv: string[]): Promise<unknown> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      id: { type: 'string' },
      name: { type: 'string' },
      tenant: { type: 'string' },
      permissions: { type: 'string' },
      'admin-username': { type: 'string' },
      'admin-email': { type: 'string' },
      target: { type: 'string' },
      username: { type: 'string' },
    },
  });
  const [area, command] = positionals;
  const services = await createServices(parseConfig(settings()), { logger: createLogger((l) => process.stderr.write(l + '\n'), 'warn') });
  const actor = { type: 'operator' as const, id: `cli:${process.env.USER ?? 'unknown'}`.slice(0, 64) };
  const correlationId = `cli-${Date.now()}`;
  switch (`${area} ${command}`) {
    case 'tenant create': {
      const id = parse(tenantId, values.id, 'id');
      const name = parse(line(200), values.name, 'name');
      const admin =
        values['admin-username'] !== undefined
          ? { username: parse(tenantCreateSchema.shape.admin.shape.username, values['admin-username'], 'admin-username'), email: parse(z.email(), values['admin-email'], 'admin-email') }
          : undefined;
      // The same code as POST /api/tenants.
      return onboardTenant(services, { id, name, ...(admin ? { admin } : {}) }, { actor, correlationId });
    }
    case 'integration create': {
      const tenant = parse(tenantId, values.tenant, 'tenant');
      if (!(await services.tenants.get(tenant))) throw new UsageError(`--tenant: no tenant "${tenant}"`);
      const name = parse(line(200), values.name, 'name');
      const permissions = parse(z.array(permissionSchema).min(1), (values.permissions ?? '').split(',').filter(Boolean), 'permissions');
      const created = await services.integrations.create(tenant, name, permissions, actor, correlationId);
      return { ...created, tenant };
    }
    case 'integration revoke': {
      const tenant = parse(tenantId, values.tenant, 'tenant');
      const id = parse(z.string().regex(/^[0-9a-f]{16}$/), values.id, 'id');
      await services.integrations.revoke(tenant, id, actor, correlationId);
      return { tenant, id, revoked: true };
    }
    case 'backup create': {
      const backupId = services.backups.newBackupId();
      const tables = [];
      for (const table of await services.backups.tables()) tables.push(await services.backups.backupTable(backupId, table));
      return services.backups.writeManifest(backupId, tables);
    }
    case 'backup restore': {
      const backupId = parse(z.string().regex(/^[0-9]{8}-[0-9a-z-]{4,40}$/), positionals[2], 'backup-id');
      const targetSetting = values.target ?? process.env.LABVAULT_RESTORE_TARGET;
      if (!targetSetting) throw new UsageError('--target: the connection string of the empty account to restore into (or LABVAULT_RESTORE_TARGET)');
      const target = createStorageClients({ kind: 'connectionString', connectionString: targetSetting });
      return services.backups.restore(backupId, target);
    }
    case 'operator unlock': {
      const username = parse(z.string().regex(/^[a-z0-9][a-z0-9._@-]{2,63}$/), values.username, 'username');
      const row = await services.users.findByUsername(OPERATOR_REALM, username);
      if (!row) throw new UsageError(`--username: no operator "${username}"`);
      await services.guard.reset(OPERATOR_REALM, username);
      await services.audit.record(OPERATOR_REALM, services.users.partition(OPERATOR_REALM), [services.users.event('user.unlock', 'U', row.id, { actor, correlationId })]);
      return { username, unlocked: true };
    }
    case 'audit verify': {
      const tenant = parse(tenantId, values.tenant, 'tenant');
      return services.audit.verify(tenant);
    }
    default:
      throw new UsageError(USAGE);
  }
}

try {
  const result = await main(process.argv.slice(2));
  process.stdout.write(JSON.stringify(result) + '\n');
} catch (error) {
  if (error instanceof UsageError || error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  if (error instanceof ProblemError) {
    process.stderr.write(`${error.status} ${error.title}: ${error.detail}\n`);
    process.exit(1);
  }
  process.stderr.write(`admin failed: ${error instanceof Error ? error.name : 'error'}\n`);
  process.exit(1);
}
