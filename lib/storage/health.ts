import { serviceUnavailable } from '../http/problem.js';
import type { StorageClients } from './clients.js';

export interface StorageHealth {
  status: 'ok' | 'degraded';
  storage: 'ok';
  /** Which endpoint answered: the primary, or (degraded: reads only) the RA-GZRS secondary. */
  readEndpoint: 'primary' | 'secondary';
}

/** A read through the same clients the app uses; 503 when neither endpoint answers. */
export async function checkStorageHealth(storage: StorageClients): Promise<StorageHealth> {
  try {
    await storage.tableService.getProperties({ abortSignal: AbortSignal.timeout(8000) });
  } catch {
    throw serviceUnavailable(10);
  }
  const readEndpoint = storage.readEndpoint.lastRead;
  return { status: readEndpoint === 'primary' ? 'ok' : 'degraded', storage: 'ok', readEndpoint };
}
