import type { ContainerClient } from '@azure/storage-blob';
import { isNotFound, statusOf } from './errors.js';

/** One stored item under a name: the blob, one of its snapshots or previous versions, or uncommitted blocks. */
export interface StoredItem {
  name: string;
  versionId?: string;
  snapshot?: string;
  current: boolean;
  bytes: number;
}

/**
 * Every blob under a prefix with its snapshots, versions and uncommitted blocks. Azurite lists no
 * versions; Azure does (versioning is on in production).
 */
export async function listPrefixCompletely(container: ContainerClient, prefix: string): Promise<StoredItem[]> {
  const items: StoredItem[] = [];
  for await (const item of container.listBlobsFlat({
    prefix,
    includeSnapshots: true,
    includeVersions: true,
    includeUncommitedBlobs: true,
  })) {
    items.push({
      name: item.name,
      ...(item.versionId ? { versionId: item.versionId } : {}),
      ...(item.snapshot ? { snapshot: item.snapshot } : {}),
      current: item.isCurrentVersion !== false,
      bytes: item.properties.contentLength ?? 0,
    });
  }
  return items;
}

/**
 * Deletes listed items (16 at a time): snapshots and old versions first, then the blobs, whatever
 * their holder did through an upload link. A lease (even an infinite one) is broken with the
 * service's own credentials; a name that holds only uncommitted blocks gets an empty block list
 * committed and is then deleted, which discards the blocks.
 */
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
        else {
          await removeBlob(container, item.name);
          // Where versioning is on, deleting the blob keeps its current version as a previous one.
          if (item.versionId) await client.withVersion(item.versionId).deleteIfExists();
        }
      }
    }),
  );
}

/** Deletes a blob with every snapshot and version, lease or uncommitted blocks notwithstanding. Returns what it removed. */
export async function purgeBlob(container: ContainerClient, name: string): Promise<{ blobs: number; bytes: number }> {
  const items = (await listPrefixCompletely(container, name)).filter((item) => item.name === name);
  await deleteItems(container, items);
  // A blob created between the listing and the delete (a re-upload through a live link) goes too.
  await removeBlob(container, name);
  return { blobs: items.length, bytes: items.reduce((n, item) => n + item.bytes, 0) };
}

/**
 * Deletes a blob with everything stored under its name, where nobody needs to know how much that
 * was (purgeBlob lists first to count it): the blob with its snapshots, then a listing of what is
 * left under the name (previous versions, one of them made by this very delete where versioning is
 * on; uncommitted blocks; a re-upload through a live link in between), which goes too. Two requests
 * when the name held one blob, against purgeBlob's four.
 */
export async function discardBlob(container: ContainerClient, name: string): Promise<void> {
  await removeBlob(container, name);
  const left = (await listPrefixCompletely(container, name)).filter((item) => item.name === name);
  if (left.length > 0) await deleteItems(container, left);
}

const LEASE_HELD = new Set([
  'LeaseIdMissing',
  'LeaseIdMismatchWithBlobOperation',
  'LeaseIsBreakingAndCannotBeAcquired',
  'LeaseAlreadyPresent',
]);

async function removeBlob(container: ContainerClient, name: string): Promise<void> {
  const blob = container.getBlockBlobClient(name);
  for (let attempt = 0; attempt < 6; attempt++) {
    let deleted: boolean;
    try {
      deleted = (await blob.deleteIfExists({ deleteSnapshots: 'include' })).succeeded;
    } catch (error) {
      const code = (error as { code?: string }).code ?? '';
      if (statusOf(error) !== 412 || !LEASE_HELD.has(code)) throw error;
      // Someone holds a lease (an upload link allows one): break it at once, then delete.
      await blob
        .getBlobLeaseClient()
        .breakLease(0)
        .catch((e: unknown) => {
          if (!isNotFound(e)) throw e;
        });
      continue;
    }
    if (deleted) return;
    // No committed blob: uncommitted blocks may still be stored under the name. They belong to no
    // blob a delete could name, so commit an empty list (the blob then exists) and delete that.
    let pending: number;
    try {
      pending = (await blob.getBlockList('uncommitted')).uncommittedBlocks?.length ?? 0;
    } catch (error) {
      if (isNotFound(error)) return;
      throw error;
    }
    if (pending === 0) return;
    await blob.commitBlockList([]);
  }
  throw new Error('the blob kept changing under its deletion');
}
