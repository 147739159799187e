// Data export: fan out over the tenant's data in parts, fan in to one archive, keep it available
// for its retrieval period, then delete it. Inputs and outputs are ids and checksums only.
import * as df from 'durable-functions';
import { exportInstanceId } from './instance-ids.js';
import { storageRetry } from './retry.js';
import {
  ARCHIVE_DAYS,
  archiveInputsOf,
  type ArchiveSummary,
  type ExportFormat,
  type ExportPurpose,
  type PartFile,
  SHARED_BUCKETS,
  sharedListsOf,
} from '../lib/exports/exports.js';
import { getServices } from '../lib/services.js';

interface ExportInput {
  tenant: string;
  exportId: string;
  format: ExportFormat;
  purpose: ExportPurpose;
}

const system = (input: ExportInput) => ({
  actor: { type: 'system' as const, id: 'export-orchestration' },
  correlationId: exportInstanceId(input.tenant, input.exportId),
});
const PARALLEL_PARTS = 4;

df.app.activity('exportPlan', {
  handler: async (input: ExportInput) => {
    const { exports } = await getServices();
    await exports.markRunning(input.tenant, input.exportId);
    return exports.plan(input.tenant, input.exportId);
  },
});

df.app.activity('exportPart', {
  handler: async (input: ExportInput & { part: string }) =>
    (await getServices()).exports.writePart(input.tenant, input.exportId, input.part, input.format),
});

df.app.activity('exportShared', {
  handler: async (input: ExportInput & { bucket: number; files: PartFile[] }) =>
    (await getServices()).exports.writeShared(input.tenant, input.exportId, input.bucket, input.files),
});

df.app.activity('exportAssemble', {
  handler: async (input: ExportInput & { files: PartFile[]; assembledAt: string }) =>
    (await getServices()).exports.assemble(input.tenant, input.exportId, input.format, input.files, {
      assembledAt: new Date(input.assembledAt),
    }),
});

df.app.activity('exportComplete', {
  handler: async (input: ExportInput & { archive: { bytes: number; sha256: string } & Partial<ArchiveSummary> }) => {
    await (await getServices()).exports.complete(input.tenant, input.exportId, input.archive, system(input));
  },
});

df.app.activity('exportDiscardParts', {
  handler: async (input: ExportInput) => (await getServices()).exports.discardParts(input.tenant, input.exportId),
});

df.app.activity('exportFail', {
  handler: async (input: ExportInput & { reason: string }) => {
    await (await getServices()).exports.fail(input.tenant, input.exportId, input.reason, system(input));
  },
});

df.app.activity('exportDeleteArchive', {
  handler: async (input: ExportInput) => {
    await (await getServices()).exports.deleteArchive(input.tenant, input.exportId, system(input));
  },
});

df.app.orchestration('exportTenantData', function* (context) {
  const input = context.df.getInput<ExportInput>();
  let archive: { bytes: number; sha256: string; files: number; counts: Record<string, number> };
  try {
    const parts = (yield context.df.callActivityWithRetry('exportPlan', storageRetry(), input)) as string[];
    const files: PartFile[] = [];
    context.df.setCustomStatus({ phase: 'parts', partsDone: 0, partsTotal: parts.length });
    for (let i = 0; i < parts.length; i += PARALLEL_PARTS) {
      const batch = parts.slice(i, i + PARALLEL_PARTS);
      const results = (yield context.df.Task.all(
        batch.map((part) => context.df.callActivityWithRetry('exportPart', storageRetry(), { ...input, part })),
      )) as PartFile[][];
      files.push(...results.flat());
      context.df.setCustomStatus({
        phase: 'parts',
        partsDone: Math.min(i + PARALLEL_PARTS, parts.length),
        partsTotal: parts.length,
      });
    }
    if (input.format === 'fhir') {
      // Patients, practitioners and practices once each in the whole export: deduplicated per bucket.
      context.df.setCustomStatus({ phase: 'shared', partsDone: parts.length, partsTotal: parts.length });
      const buckets = Array.from({ length: SHARED_BUCKETS }, (_, bucket) => bucket);
      const shared = (yield context.df.Task.all(
        buckets.map((bucket) =>
          context.df.callActivityWithRetry('exportShared', storageRetry(), {
            ...input,
            bucket,
            files: sharedListsOf(files, bucket),
          }),
        ),
      )) as PartFile[][];
      files.push(...shared.flat());
    }
    context.df.setCustomStatus({ phase: 'archive', partsDone: parts.length, partsTotal: parts.length });
    archive = (yield context.df.callActivityWithRetry('exportAssemble', storageRetry(), {
      ...input,
      files: archiveInputsOf(files),
      assembledAt: context.df.currentUtcDateTime.toISOString(),
    })) as typeof archive;
    yield context.df.callActivityWithRetry('exportComplete', storageRetry(), {
      ...input,
      archive: { bytes: archive.bytes, sha256: archive.sha256, files: archive.files, counts: archive.counts },
    });
    yield context.df.callActivityWithRetry('exportDiscardParts', storageRetry(), input);
    context.df.setCustomStatus({ phase: 'available', partsDone: parts.length, partsTotal: parts.length });
  } catch (error) {
    const reason = error instanceof Error ? (error.message.split('\n')[0] ?? 'failed') : 'failed';
    yield context.df.callActivityWithRetry('exportFail', storageRetry(), { ...input, reason });
    return { status: 'failed' };
  }
  // The archive stays retrievable for its period (30 days at contract end, else 7), then goes.
  const deleteAt = new Date(context.df.currentUtcDateTime.getTime() + ARCHIVE_DAYS[input.purpose] * 24 * 3600 * 1000);
  yield context.df.createTimer(deleteAt);
  yield context.df.callActivityWithRetry('exportDeleteArchive', storageRetry(), input);
  context.df.setCustomStatus({ phase: 'deleted' });
  return { status: 'expired', archive };
});
