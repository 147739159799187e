import type { ContainerClient } from '@azure/storage-blob';

/**
 * Deletes a blob with every snapshot and every previous version (versioning keeps a deleted blob
 * as a previous version). Returns the bytes removed. Azurite lists no versions; Azure does.
 */
export async function deleteBlobCompletely(container: ContainerClient, name: string): Promise<{ blobs: number; bytes: number }> {
  let blobs = 0;
  let bytes = 0;
  for await (const item of container.listBlobsFlat({ prefix: name, includeSnapshots: true, includeVersions: true })) {
    if (item.name !== name) continue;
    bytes += item.properties.contentLength ?? 0;
    blobs++;
    const client = container.getBlobClient(item.name);
    if (item.versionId && !item.isCurrentVersion) await client.withVersion(item.versionId).deleteIfExists();
    else if (item.snapshot) await client.withSnapshot(item.snapshot).deleteIfExists();
    else await client.deleteIfExists({ deleteSnapshots: 'include' });
  }
  return { blobs, bytes };
}

/** Every blob (with snapshots and versions) under a prefix: one listing, deletes 16 at a time. */
export interface StoredItem {
  name: string;
  versionId?: string;
  snapshot?: string;
  current: boolean;
  bytes: number;
}

/** Every blob under a prefix with its versions and snapshots. */
export async function listPrefixCompletely(container: ContainerClient, prefix: string): Promise<StoredItem[]> {
  const items: StoredItem[] = [];
  for await (const item of container.listBlobsFlat({ prefix, includeSnapshots: true, includeVersions: true })) {
    items.push({ name: item.name, ...(item.versionId ? { versionId: item.versionId } : {}), ...(item.snapshot ? { snapshot: item.snapshot } : {}), current: item.isCurrentVersion !== false, bytes: item.properties.contentLength ?? 0 });
  }
  return items;
}

/** Deletes listed blobs (16 at a time): snapshots and old versions first, then the blobs themselves. */
export async function deleteItems(container: ContainerClient, listed: readonly StoredItem[]): Promise<void> {
  const items = [...listed].sort((a, b) => Number(a.current && !a.snapshot) - Number(b.current && !b.snapshot));
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < items.length; i = next++) {
        const item = items[i];
        if (!item) continue;
        const client = container.getBlobClient(item.name);
        if (item.snapshot) await client.withSnapshot(item.snapshot).deleteIfExists();
        else if (item.versionId && !item.current) await client.withVersion(item.versionId).deleteIfExists();
        else await client.deleteIfExists({ deleteSnapshots: 'include' });
      }
    }),
  );
}
