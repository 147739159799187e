// `npm run -s admin -- <area> <command> [--flag value]`: operator tasks against the same storage and
// keys as the running local host (through ${LABVAULT_DATA_DIR}/local-host.json) or the configured
// AzureWebJobsStorage. Prints exactly one JSON object on stdout; help, diagnostics and errors go
// to stderr (help to stdout when asked for). Exit codes: 0 done, 1 failed, 2 wrong usage or settings.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { ConfigError, parseConfig } from '../lib/config.js';
import { DomainError } from '../lib/errors.js';
import { line, tenantId } from '../lib/fields.js';
import { tenantCreateSchema } from '../lib/tenants/api.js';
import { OPERATOR_REALM, permissionSchema } from '../lib/identity/permissions.js';
import { localSettings } from '../local-host/host.js';
import { createLogger } from '../lib/observability/logger.js';
import { createServices, type Services } from '../lib/services.js';
import { createStorageClients } from '../lib/storage/clients.js';
import { onboardTenant } from '../lib/tenants/onboarding.js';

class UsageError extends Error {
  override name = 'UsageError';
}

type Values = Record<string, string | boolean | undefined>;

interface Command {
  usage: string;
  summary: string;
  run(
    values: Values,
    positionals: string[],
    services: Services,
    context: { actor: { type: 'operator'; id: string }; correlationId: string },
  ): Promise<unknown>;
}

function parse<T extends z.ZodType>(schema: T, value: unknown, flag: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new UsageError(`--${flag}: ${result.error.issues[0]?.message ?? 'invalid'}`);
  return result.data;
}

async function existingTenant(services: Services, value: unknown): Promise<string> {
  const tenant = parse(tenantId, value, 'tenant');
  if (!(await services.tenants.get(tenant))) throw new UsageError(`--tenant: no such tenant "${tenant}"`);
  return tenant;
}

async function existingOperator(services: Services, value: unknown) {
  const username = parse(z.string().regex(/^[a-z0-9][a-z0-9._@-]{2,63}$/, 'an operator username'), value, 'username');
  const row = await services.users.findByUsername(OPERATOR_REALM, username);
  if (!row) throw new UsageError(`--username: no operator "${username}"`);
  return { username, row };
}

const COMMANDS: Record<string, Command> = {
  'tenant create': {
    usage: 'tenant create --id <id> --name <name> [--admin-username <u> --admin-email <e>]',
    summary: 'Create a tenant (and its first admin, whose one-time password is printed once)',
    async run(values, _p, services, { actor, correlationId }) {
      const id = parse(tenantId, values.id, 'id');
      const name = parse(line(200), values.name, 'name');
      const admin =
        values['admin-username'] !== undefined
          ? {
              username: parse(
                tenantCreateSchema.shape.admin.shape.username,
                values['admin-username'],
                'admin-username',
              ),
              email: parse(z.email(), values['admin-email'], 'admin-email'),
            }
          : undefined;
      // The same code as POST /api/tenants.
      return onboardTenant(services, { id, name, ...(admin ? { admin } : {}) }, { actor, correlationId });
    },
  },
  'integration create': {
    usage: 'integration create --tenant <id> --name <name> --permissions orders:create,orders:read',
    summary: 'Create an integration; its API key is printed once',
    async run(values, _p, services, { actor, correlationId }) {
      const tenant = await existingTenant(services, values.tenant);
      const name = parse(line(200), values.name, 'name');
      const permissions = parse(
        z.array(permissionSchema).min(1),
        String(values.permissions ?? '')
          .split(',')
          .filter(Boolean),
        'permissions',
      );
      return { ...(await services.integrations.create(tenant, name, permissions, { actor, correlationId })), tenant };
    },
  },
  'integration revoke': {
    usage: 'integration revoke --tenant <id> --id <integration-id>',
    summary: "Revoke an integration's key at once",
    async run(values, _p, services, { actor, correlationId }) {
      const tenant = await existingTenant(services, values.tenant);
      const id = parse(z.string().regex(/^[0-9a-f]{16}$/, '16 hex digits'), values.id, 'id');
      await services.integrations.revoke(tenant, id, { actor, correlationId });
      return { tenant, id, revoked: true };
    },
  },
  'audit verify': {
    usage: 'audit verify --tenant <id>',
    summary: "Verify every hash chain of a tenant's audit trail",
    async run(values, _p, services) {
      const tenant = await existingTenant(services, values.tenant);
      return { tenant, ...(await services.audit.verify(tenant)) };
    },
  },
  'operator unlock': {
    usage: 'operator unlock --username <name>',
    summary: 'Unlock an operator account locked after failed logins',
    async run(values, _p, services, { actor, correlationId }) {
      const { username, row } = await existingOperator(services, values.username);
      await services.guard.reset(OPERATOR_REALM, username);
      await services.audit.record(OPERATOR_REALM, services.users.partition(OPERATOR_REALM), [
        services.users.event('user.unlock', 'U', row.id, { actor, correlationId }),
      ]);
      return { username, unlocked: true };
    },
  },
  'operator password-reset': {
    usage: 'operator password-reset --username <name>',
    summary:
      'Break glass: a new one-time password for an operator account (unlocked, every session ended), printed once',
    async run(values, _p, services, { actor, correlationId }) {
      const { username, row } = await existingOperator(services, values.username);
      // Audited as user.password.reset in the operator realm; the holder must change it at first login.
      const { initialPassword } = await services.users.resetPassword(OPERATOR_REALM, row.id, { actor, correlationId });
      await services.guard.reset(OPERATOR_REALM, username);
      return { username, initialPassword };
    },
  },
  'backup create': {
    usage: 'backup create',
    summary: 'Back up every table now (encrypted, checksummed, with a manifest)',
    async run(_v, _p, services) {
      const backupId = services.backups.newBackupId();
      const tables = [];
      for (const table of await services.backups.tables())
        tables.push(await services.backups.backupTable(backupId, table));
      return services.backups.writeManifest(backupId, tables);
    },
  },
  'backup list': {
    usage: 'backup list',
    summary: 'Finished backups, newest first',
    async run(_v, _p, services) {
      return { backups: await services.backups.list() };
    },
  },
  'backup restore': {
    usage: 'backup restore <backup-id> --target <connection string of an empty account>',
    summary: 'Restore a backup into an empty storage account (the restore drill), verifying every checksum',
    async run(values, positionals, services, context) {
      const backupId = parse(
        z.string().regex(/^[0-9]{8}-[0-9a-z-]{4,40}$/, 'a backup id such as 20261130-1a2b3c4d'),
        positionals[2],
        'backup-id',
      );
      const targetSetting = (values.target as string | undefined) ?? process.env.LABVAULT_RESTORE_TARGET;
      if (!targetSetting)
        throw new UsageError(
          '--target: the connection string of the empty account to restore into (or LABVAULT_RESTORE_TARGET)',
        );
      const drill = await services.backups.restore(
        backupId,
        createStorageClients({ kind: 'connectionString', connectionString: targetSetting }),
      );
      // The backup holds what patients' erasures completed after it deleted: applied again in the
      // restored account, so a restore never brings an erased patient's records back.
      const restored = await createServices(parseConfig({ ...settings(), AzureWebJobsStorage: targetSetting }), {
        logger: createLogger((l) => process.stderr.write(l + '\n'), 'warn'),
      });
      const erasures = await restored.subjects.reapplyErasures(
        await services.backups.erasuresToReapply(backupId),
        context,
      );
      return { ...drill, erasuresReapplied: erasures };
    },
  },
};

const USAGE = [
  'usage: npm run -s admin -- <area> <command> [options]',
  '',
  ...Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(90)} ${c.summary}`),
  '',
  'Each command prints one JSON object. `<area> <command> --help` shows one command.',
].join('\n');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The app's settings, with the storage of the running local host when no storage is configured. */
function settings(): Record<string, string | undefined> {
  const env = localSettings();
  const dataDir = resolve(env.LABVAULT_DATA_DIR || '.labvault');
  env.LABVAULT_DATA_DIR = dataDir;
  if (!env.AzureWebJobsStorage && !env.AzureWebJobsStorage__accountName) {
    const file = join(dataDir, 'local-host.json');
    let info: { storageConnectionString?: string; pid?: number };
    try {
      info = JSON.parse(readFileSync(file, 'utf8')) as typeof info;
    } catch {
      throw new ConfigError(
        `no running local host: ${file} is missing; run npm start first (or set AzureWebJobsStorage)`,
      );
    }
    // A host killed hard leaves its file behind: a dead pid is no running host.
    if (!info.pid || !alive(info.pid))
      throw new ConfigError(
        `no running local host: the host that wrote ${file} (pid ${info.pid ?? '?'}) is not running; run npm start first`,
      );
    env.AzureWebJobsStorage = info.storageConnectionString;
  }
  return env;
}

/** An error's cause, without what must never reach a terminal or a log: keys, signatures, tokens, connection strings. */
function redact(message: string): string {
  return message
    .replace(/(AccountKey|SharedAccessSignature|SharedAccessKey)=[^;\s]+/gi, '$1=[redacted]')
    .replace(/([?&](sig|code|se|sv|sp|st|spr|srt|ss|skoid|sktid|skt|ske|sks|skv))=[^&\s]+/gi, '$1=[redacted]')
    .replace(/(lvk|lvr)_[A-Za-z0-9_-]+/g, '$1_[redacted]')
    .replace(/eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g, '[redacted token]')
    .slice(0, 500);
}

async function main(argv: string[]): Promise<{ out?: unknown; help?: string }> {
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
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [area, command] = positionals;
  if (area === undefined || area === 'help') return { help: USAGE };
  const entry = COMMANDS[`${area} ${command ?? ''}`];
  if (!entry) throw new UsageError(`unknown command "${[area, command].filter(Boolean).join(' ')}"\n${USAGE}`);
  if (values.help) return { help: `usage: npm run -s admin -- ${entry.usage}\n\n${entry.summary}.` };
  const services = await createServices(parseConfig(settings()), {
    logger: createLogger((l) => process.stderr.write(l + '\n'), 'warn'),
  });
  const actor = { type: 'operator' as const, id: `cli:${process.env.USER ?? 'unknown'}`.slice(0, 64) };
  return { out: await entry.run(values, positionals, services, { actor, correlationId: `cli-${Date.now()}` }) };
}

try {
  const result = await main(process.argv.slice(2));
  if (result.help !== undefined) process.stdout.write(`${result.help}\n`);
  else process.stdout.write(JSON.stringify(result.out) + '\n');
  process.exit(0);
} catch (error) {
  if (
    error instanceof UsageError ||
    error instanceof ConfigError ||
    (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))
  ) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  if (error instanceof DomainError) {
    process.stderr.write(`${error.kind}: ${error.detail}\n`);
    process.exit(1);
  }
  const cause = error instanceof Error ? `${error.name}: ${redact(error.message)}` : redact(String(error));
  process.stderr.write(`admin failed: ${cause}\n`);
  process.exit(1);
}
