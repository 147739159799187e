import { app, type InvocationContext, type Timer } from '@azure/functions';
import * as df from 'durable-functions';
import { deleteBackup, drillBackup, listBackups, startBackup } from '../lib/backups/api.js';
import { BACKUP_SCHEDULE } from '../lib/backups/backups.js';
import { getServices } from '../lib/services.js';
import { backupInstanceId } from '../orchestrations/backup.js';
import { startOrchestration } from './durable.js';
import { handle, metaOf } from './http.js';

// Nightly at 01:30 UTC; one backup per day (the instance id is the date, so a re-run is refused).
app.timer('nightlyBackup', {
  schedule: BACKUP_SCHEDULE,
  extraInputs: [df.input.durableClient()],
  handler: async (_timer: Timer, context: InvocationContext) => {
    const { logger } = await getServices();
    const day = new Date().toISOString().slice(0, 10).replaceAll('-', '');
    // A start that fails for any other reason than "already running" fails the timer (it is retried and seen).
    const outcome = await startOrchestration(context, 'tableBackup', backupInstanceId(day), {
      backupId: `${day}-nightly`,
    });
    logger.log('info', outcome === 'started' ? 'backup.started' : 'backup.exists', { day });
  },
});

app.http(
  listBackups.id,
  handle(listBackups, async (_ctx, { backups }) => ({ status: 200, body: { items: await backups.list() } })),
);

app.http(
  startBackup.id,
  handle(
    startBackup,
    async (ctx, { backups }) => {
      const backupId = backups.newBackupId();
      await startOrchestration(ctx.invocation, 'tableBackup', `backup-${backupId}`, { backupId });
      return { status: 202, body: { backupId } };
    },
    { extraInputs: [df.input.durableClient()] },
  ),
);

app.http(
  deleteBackup.id,
  handle(deleteBackup, async (ctx, { backups, approvals }) => {
    await backups.manifest(ctx.params.id); // 404 for an unknown backup
    const approval = await approvals.request(
      'backup.delete',
      { target: ctx.params.id, reason: ctx.query.reason ?? 'backup no longer needed' },
      ctx.principal,
      metaOf(ctx),
    );
    return { status: 202, headers: { Location: `/api/approvals/${approval.id}` }, body: approval };
  }),
);

app.http(
  drillBackup.id,
  handle(drillBackup, async (ctx, { backups }) => ({ status: 200, body: await backups.drill(ctx.params.id) })),
);
