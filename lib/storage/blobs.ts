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

/** Every blob (with snapshots and versions) under a prefix. */
export async function deletePrefixCompletely(container: ContainerClient, prefix: string): Promise<{ blobs: number; bytes: number }> {
  const names = new Set<string>();
  for await (const item of container.listBlobsFlat({ prefix, includeSnapshots: true, includeVersions: true })) names.add(item.name);
  let blobs = 0;
  let bytes = 0;
  for (const name of names) {
    const r = await deleteBlobCompletely(container, name);
    blobs += r.blobs;
    bytes += r.bytes;
  }
  return { blobs, bytes };
}
