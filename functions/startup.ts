import { app } from '@azure/functions';
import { bootstrapOperator } from '../lib/identity/bootstrap.js';
import { getServices } from '../lib/services.js';

// Once per start, before the first invocation (both hosts run appStart hooks so): on an empty
// operator realm, the bootstrap operator account, which must change its password at first login.
app.hook.appStart(async () => {
  const { users, config, logger } = await getServices();
  const initialPassword = process.env.LABVAULT_OPERATOR_INITIAL_PASSWORD || undefined;
  if (config.environment === 'production' && !initialPassword) {
    // A generated password would land in the platform's log stream: production takes it from a setting
    // (a Key Vault reference) or waits.
    logger.log('warn', 'operator.bootstrap.waiting', { setting: 'LABVAULT_OPERATOR_INITIAL_PASSWORD' });
    return;
  }
  const bootstrap = await bootstrapOperator(users, initialPassword);
  if (!bootstrap.created) return;
  logger.log('info', 'operator.bootstrap', { generated: bootstrap.generated === true });
  if (bootstrap.generated) {
    // Outside production only: printed once, to the console of whoever started the host.
    process.stdout.write(
      `Created the operator account "operator" with the one-time password: ${bootstrap.initialPassword}\n`,
    );
  } else {
    process.stdout.write('Created the operator account "operator" with LABVAULT_OPERATOR_INITIAL_PASSWORD.\n');
  }
});
