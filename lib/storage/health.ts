import type { StorageClients } from './clients.js';

export type StorageHealth =
  | {
      status: 'ok' | 'degraded';
      storage: 'ok';
      /** Which endpoint answered: the primary, or (degraded: reads only) the RA-GZRS secondary. */
      readEndpoint: 'primary' | 'secondary';
    }
  | { status: 'unreachable' };

/** A read through the same clients the app uses; `unreachable` when neither endpoint answers. */
export async function checkStorageHealth(
  storage: StorageClients,
  options: { abortSignal?: AbortSignal } = {},
): Promise<StorageHealth> {
  try {
    await storage.tableService.getProperties({ abortSignal: options.abortSignal ?? AbortSignal.timeout(8000) });
  } catch {
    return { status: 'unreachable' };
  }
  const readEndpoint = storage.readEndpoint.lastRead;
  return { status: readEndpoint === 'primary' ? 'ok' : 'degraded', storage: 'ok', readEndpoint };
}
