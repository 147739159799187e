import { app, type InvocationContext, type Timer } from '@azure/functions';
import * as df from 'durable-functions';
import { getServices } from '../lib/services.js';
import { backupInstanceId } from '../orchestrations/backup.js';

// Nightly at 01:30 UTC; one backup per day (the instance id is the date, so a re-run is refused).
app.timer('nightlyBackup', {
  schedule: '0 30 1 * * *',
  extraInputs: [df.input.durableClient()],
  handler: async (_timer: Timer, context: InvocationContext) => {
    const { backups, logger } = await getServices();
    const day = new Date().toISOString().slice(0, 10).replaceAll('-', '');
    try {
      await df.getClient(context).startNew('tableBackup', { instanceId: backupInstanceId(day), input: { backupId: `${day}-nightly` } });
      logger.log('info', 'backup.started', { day });
    } catch {
      logger.log('info', 'backup.exists', { day, tables: (await backups.tables()).length });
    }
  },
});
