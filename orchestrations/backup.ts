// Nightly table backup: every table in parallel (each an idempotent activity), then the manifest.
import * as df from 'durable-functions';
import { storageRetry } from './retry.js';
import type { TableBackup } from '../lib/backups/backups.js';
import { getServices } from '../lib/services.js';

export const backupInstanceId = (day: string) => `backup-${day}`;

df.app.activity('backupListTables', { handler: async () => (await getServices()).backups.tables() });
df.app.activity('backupTable', {
  handler: async (input: { backupId: string; table: string }) =>
    (await getServices()).backups.backupTable(input.backupId, input.table),
});
df.app.activity('backupManifest', {
  handler: async (input: { backupId: string; tables: TableBackup[] }) => {
    const manifest = await (await getServices()).backups.writeManifest(input.backupId, input.tables);
    return {
      backupId: manifest.backupId,
      tables: manifest.tables.length,
      entities: manifest.tables.reduce((n, t) => n + t.entities, 0),
    };
  },
});

df.app.activity('backupLifecycle', {
  handler: async (input: { backupId: string; event: 'started' | 'failed'; cause?: string }) => {
    (await getServices()).logger.log(input.event === 'failed' ? 'error' : 'info', `backup.${input.event}`, {
      backupId: input.backupId,
      ...(input.cause ? { cause: input.cause.slice(0, 200) } : {}),
    });
  },
});

df.app.orchestration('tableBackup', function* (context) {
  const { backupId } = context.df.getInput<{ backupId: string }>();
  yield context.df.callActivity('backupLifecycle', { backupId, event: 'started' });
  try {
    const tables = (yield context.df.callActivityWithRetry('backupListTables', storageRetry())) as string[];
    context.df.setCustomStatus({ phase: 'tables', tables: tables.length });
    const results = (yield context.df.Task.all(
      tables.map((table) => context.df.callActivityWithRetry('backupTable', storageRetry(), { backupId, table })),
    )) as TableBackup[];
    context.df.setCustomStatus({ phase: 'manifest', tables: tables.length });
    return yield context.df.callActivityWithRetry('backupManifest', storageRetry(), { backupId, tables: results });
  } catch (error) {
    yield context.df.callActivity('backupLifecycle', {
      backupId,
      event: 'failed',
      cause: error instanceof Error ? (error.message.split('\n')[0] ?? 'failed') : 'failed',
    });
    throw error;
  }
});
