import { createHash } from 'node:crypto';

/**
 * Partition keys of the tenant data table: `{tenant}~{area}` or `{tenant}~{area}~{shard}`.
 * Every tenant row lives under its tenant's prefix, so a tenant's data is one key range.
 */
export function tenantPartition(tenantId: string, area: string, shard?: string): string {
  return shard === undefined ? `${tenantId}~${area}` : `${tenantId}~${area}~${shard}`;
}

/** Bounds of all partitions of one tenant (areas are lowercase words, so they sort below `~~`). */
export function tenantPartitionRange(tenantId: string): { from: string; to: string } {
  return { from: `${tenantId}~`, to: `${tenantId}~~` };
}

/** The part of a partition key after the tenant prefix (the audit stream's name). */
export function streamOf(tenantId: string, partitionKey: string): string {
  return partitionKey.slice(tenantId.length + 1);
}

const SHARD_COUNT = 16;
export const SHARDS = Array.from({ length: SHARD_COUNT }, (_, i) => i.toString(16));

/** A stable shard (one hex digit) for any string, spreading a tenant's rows over small partitions. */
export function shardOf(value: string): string {
  const digest = createHash('sha256').update(value).digest();
  return ((digest[0] ?? 0) % SHARD_COUNT).toString(16);
}

/** Fixed-width decimal, so row keys sort in numeric order. */
export function padSeq(seq: number): string {
  return seq.toString().padStart(12, '0');
}
