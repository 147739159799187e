// Durable instance ids of the orchestrations that run once per record: deterministic, so a repeated
// start meets the running instance, and whoever holds the record can ask the runtime about its run.
// Ids and tenant names only, never personal data.

export const exportInstanceId = (tenant: string, exportId: string) => `export-${tenant}-${exportId}`;

export const subjectErasureInstanceId = (tenant: string, requestId: string) => `subject-erasure-${tenant}-${requestId}`;
