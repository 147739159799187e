// `npm start`: the embedded local host (see lib/local-host). Serves http://127.0.0.1:${PORT:-7071}/api.
import { ConfigError } from '../lib/config.js';
import { startLocalHost } from '../lib/local-host/host.js';

try {
  const host = await startLocalHost();
  process.stdout.write(`LabVault local host serving ${host.apiBaseUrl}\n`);
  for (const r of host.registrations) {
    const trigger = Object.values(r.bindings).find((b) => b.direction === 'in' && String(b.type).endsWith('Trigger'));
    const route = trigger && typeof trigger.route === 'string' ? ` ${(trigger.methods as string[] | undefined)?.join(',') ?? ''} ${host.apiBaseUrl}/${trigger.route}` : '';
    process.stdout.write(`  ${r.name}: ${trigger?.type ?? 'unknown'}${route}\n`);
  }
  let closing = false;
  const shutdown = (): void => {
    if (closing) return;
    closing = true;
    void host.close().then(() => process.exit(0));
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`The local host failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
