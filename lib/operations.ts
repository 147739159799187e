// The registry of every operation of the public API. It sits above the domains (it imports each
// domain's contract): the functions bind each operation to a handler, the OpenAPI document
// describes them, the tests walk them. Nothing below this file imports it.
import { approvalOperations } from './approvals/api.js';
import { auditOperations } from './audit/api.js';
import { backupOperations } from './backups/api.js';
import { breachOperations } from './breaches/api.js';
import { exportOperations } from './exports/api.js';
import { buildOpenApiDocument } from './http/openapi.js';
import type { Operation } from './http/operation.js';
import { identityOperations } from './identity/api/index.js';
import { imageOperations } from './images/api.js';
import { intakeOperations } from './intake/api.js';
import { orderOperations } from './orders/api.js';
import { platformOperations } from './platform/api.js';
import { retentionOperations } from './retention/api.js';
import { subjectRequestOperations } from './subjects/api.js';
import { subProcessorOperations } from './subprocessors/api.js';
import { complianceOperations } from './compliance/api.js';
import { tenantOperations } from './tenants/api.js';

export const ALL_OPERATIONS: readonly Operation[] = [
  ...platformOperations,
  ...identityOperations,
  ...tenantOperations,
  ...orderOperations,
  ...intakeOperations,
  ...imageOperations,
  ...exportOperations,
  ...subjectRequestOperations,
  ...subProcessorOperations,
  ...complianceOperations,
  ...breachOperations,
  ...retentionOperations,
  ...auditOperations,
  ...approvalOperations,
  ...backupOperations,
];

/** The OpenAPI document of the whole API. */
export const apiDocument = (): Record<string, unknown> => buildOpenApiDocument(ALL_OPERATIONS);
