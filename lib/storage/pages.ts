import { odata, type TableClient, type TableEntityResult } from '@azure/data-tables';

/**
 * The first `limit` rows of one partition whose row key sorts after `after`, in row-key order (how
 * a table returns one partition): a page of a keyed listing that costs a page, not the partition.
 */
export async function rowsAfter<T extends object>(
  table: TableClient,
  partitionKey: string,
  options: { after?: string | undefined; limit: number },
): Promise<TableEntityResult<T>[]> {
  const filter =
    options.after === undefined
      ? odata`PartitionKey eq ${partitionKey}`
      : odata`PartitionKey eq ${partitionKey} and RowKey gt ${options.after}`;
  const rows: TableEntityResult<T>[] = [];
  for await (const page of table.listEntities<T>({ queryOptions: { filter } }).byPage({ maxPageSize: options.limit }))
    for (const row of page) {
      rows.push(row);
      if (rows.length === options.limit) return rows;
    }
  return rows;
}
