import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../lib/config.js';
import { createLogger } from '../../lib/observability/logger.js';
import { createServices, type Services } from '../../lib/services.js';

export interface TestServices extends Services {
  logLines: string[];
}

/** Real services against the given storage, with a private key store and captured logs; `settings` add app settings. */
export async function testServices(
  connectionString: string,
  clock?: () => Date,
  keyStoreDir?: string,
  settings: Record<string, string> = {},
): Promise<TestServices> {
  const dataDir = keyStoreDir ?? mkdtempSync(join(tmpdir(), 'labvault-test-'));
  const logLines: string[] = [];
  const services = await createServices(
    parseConfig({
      ...settings,
      AzureWebJobsStorage: connectionString,
      LABVAULT_ENVIRONMENT: 'test',
      LABVAULT_DATA_DIR: dataDir,
    }),
    { logger: createLogger((line) => logLines.push(line), 'debug'), ...(clock ? { clock } : {}) },
  );
  return Object.assign(services, { logLines });
}

export const operatorActor = { type: 'operator' as const, id: 'test-operator' };
