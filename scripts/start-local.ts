// `npm start`: the embedded local host (see local-host/) running the app's entry. Serves http://127.0.0.1:${PORT:-7071}/api.
import { ConfigError } from '../lib/config.js';
import { PortInUseError, startLocalHost } from '../local-host/host.js';
import { buildConsole, consoleIsStale } from './build-console.js';

try {
  // The web console is static files the console function serves; built here when its sources changed.
  if (consoleIsStale()) await buildConsole();
  // Mirrors bicep/modules/functionapp.bicep: the uploads container's BlobCreated events go to processSpecimenImage.
  const host = await startLocalHost({
    // What the package's "main" is on Azure, as TypeScript (tsx runs it).
    entry: new URL('../functions/index.ts', import.meta.url).href,
    eventSubscriptions: [{ functionName: 'processSpecimenImage', container: 'specimen-uploads' }],
  });
  const functions = host.registrations.map((r) => {
    const trigger = Object.values(r.bindings).find((b) => b.direction === 'in' && String(b.type).endsWith('Trigger'));
    const route =
      trigger && typeof trigger.route === 'string'
        ? ` ${(trigger.methods as string[] | undefined)?.join(',') ?? ''} /api/${trigger.route}`
        : '';
    return `  ${r.name}: ${trigger?.type ?? 'unknown'}${route}`;
  });
  process.stdout.write(`${functions.join('\n')}\n\n`);
  // The next steps, last, where a newcomer's eyes are.
  process.stdout.write(
    [
      'LabVault local host is ready.',
      `  API:           ${host.apiBaseUrl}`,
      `  Console:       ${host.apiBaseUrl}/console/`,
      `  OpenAPI:       ${host.apiBaseUrl}/openapi.json`,
      `  Health:        ${host.apiBaseUrl}/health`,
      // The durable task API needs the host's system key, as on Azure (kept in host-keys.json of the data folder).
      `  Durable API:   ${host.durableBaseUrl}instances?code=${host.systemKey}`,
      `  Data:          ${host.dataDir} (Azurite's data, the local key store, host-keys.json, local-host.json)`,
      '  Admin CLI:     npm run -s admin -- --help (in another terminal)',
      `  Stop:          Ctrl+C here, or kill ${process.pid}; the data stays for the next start`,
      '',
    ].join('\n'),
  );
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
  if (error instanceof PortInUseError) {
    process.stderr.write(`The local host failed to start: ${error.message}\n`);
    process.exit(1);
  }
  process.stderr.write(
    `The local host failed to start: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}\n`,
  );
  process.exit(1);
}
