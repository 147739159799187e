import { z } from 'zod';
import { approvalSchema } from '../approvals/api.js';
import { defineOperation, type ResponseSpec } from '../http/operation.js';
import { line } from '../fields.js';
import { problemSchema } from '../http/schemas.js';

const p = (description: string): ResponseSpec => ({ description, schema: problemSchema });
const common = { 400: p('Malformed request'), 401: p('Missing or invalid credentials'), 403: p('Not permitted') };
const backupIdSchema = z.string().regex(/^[0-9]{8}-[0-9a-z-]{4,40}$/);

const drillKind = z.enum(['verification', 'restore']);
const backupSummarySchema = z
  .object({
    backupId: z.string(),
    createdAt: z.string(),
    tables: z.number(),
    entities: z.number(),
    lastDrill: z.object({ at: z.string(), kind: drillKind, passed: z.boolean() }).nullable(),
  })
  .meta({ id: 'BackupSummary' });
const restoreDrillSchema = z
  .object({
    backupId: z.string(),
    kind: drillKind,
    at: z.string(),
    passed: z.boolean(),
    durationMs: z.number(),
    tables: z.array(
      z.object({ table: z.string(), entities: z.number(), verified: z.boolean(), reason: z.string().optional() }),
    ),
  })
  .meta({ id: 'RestoreDrill' });

export const listBackups = defineOperation({
  id: 'listBackups',
  method: 'GET',
  route: 'backups',
  tag: 'backups',
  summary: 'Finished table backups, newest first',
  access: { operatorPermission: 'backups:manage' },
  responses: { 200: { description: 'Backups', schema: z.object({ items: z.array(backupSummarySchema) }) }, ...common },
});

export const startBackup = defineOperation({
  id: 'startBackup',
  method: 'POST',
  route: 'backups',
  tag: 'backups',
  summary: 'Start a table backup now (besides the nightly one)',
  access: { operatorPermission: 'backups:manage' },
  responses: { 202: { description: 'Started', schema: z.object({ backupId: z.string() }) }, ...common },
});

export const deleteBackup = defineOperation({
  id: 'deleteBackup',
  method: 'DELETE',
  route: 'backups/{id}',
  tag: 'backups',
  summary: 'Ask to delete a backup: runs once a second operator approves (four-eyes)',
  access: { operatorPermission: 'backups:manage' },
  params: z.strictObject({ id: backupIdSchema }),
  query: z.strictObject({ reason: line(500).optional() }),
  responses: {
    202: { description: 'Requested; waits for a second operator', schema: approvalSchema },
    ...common,
    404: p('Unknown backup'),
  },
});

export const drillBackup = defineOperation({
  id: 'drillBackup',
  method: 'POST',
  route: 'backups/{id}/restore-drills',
  tag: 'backups',
  summary:
    'A restore drill: every table read back as a restore reads it (both checksums, decryption, every entity counted); recorded beside the backup',
  access: { operatorPermission: 'backups:manage' },
  params: z.strictObject({ id: backupIdSchema }),
  responses: {
    200: { description: 'What the drill found (passed or not)', schema: restoreDrillSchema },
    ...common,
    404: p('Unknown backup'),
  },
});

export const backupOperations = [listBackups, startBackup, deleteBackup, drillBackup];
