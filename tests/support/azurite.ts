import { afterAll, beforeAll } from 'vitest';
import { type AzuriteInstance, startAzurite } from '../../local-host/azurite.js';

/** A fresh in-memory Azurite for one suite (in-memory Azurite never frees deleted blobs). */
export function useAzurite(): { readonly connectionString: string; readonly instance: AzuriteInstance } {
  let instance: AzuriteInstance | undefined;
  beforeAll(async () => {
    instance = await startAzurite();
  });
  afterAll(async () => {
    await instance?.stop();
  });
  return {
    get connectionString() {
      if (!instance) throw new Error('Azurite is not started yet');
      return instance.connectionString;
    },
    get instance() {
      if (!instance) throw new Error('Azurite is not started yet');
      return instance;
    },
  };
}
