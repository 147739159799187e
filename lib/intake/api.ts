import { z } from 'zod';
import { defineOperation, type FailureRenderer } from '../http/operation.js';

// The order intake in the formats labs' systems speak. Failures answer in each format's own error
// document: a FHIR OperationOutcome, an HL7 v2 ACK, an LDT answer as text (see each renderer).

const FHIR_JSON = 'application/fhir+json';

/** OperationOutcome.issue.code (R4 value set issue-type) for each HTTP status LabVault answers. */
const ISSUE_CODE: Record<number, string> = {
  400: 'structure',
  401: 'login',
  403: 'forbidden',
  404: 'not-found',
  409: 'duplicate',
  412: 'conflict',
  413: 'too-costly',
  415: 'not-supported',
  422: 'processing',
  428: 'conflict',
  429: 'throttled',
  503: 'transient',
};

/** Failures of the FHIR routes as an OperationOutcome, each field error at its FHIRPath expression. */
export const operationOutcomeFailures: FailureRenderer = {
  contentType: `${FHIR_JSON}; charset=utf-8`,
  render({ status, detail, correlationId, errors }) {
    const code = ISSUE_CODE[status] ?? 'exception';
    const issue =
      errors && errors.length > 0
        ? errors.map((e) => ({
            severity: 'error',
            code: status === 422 && /required/.test(e.message) ? 'required' : code,
            details: { text: e.message },
            diagnostics: detail,
            expression: [e.path.startsWith('/') ? `Bundle${e.path.replace(/\//g, '.')}` : e.path],
          }))
        : [{ severity: 'error', code, details: { text: detail } }];
    return JSON.stringify({
      resourceType: 'OperationOutcome',
      id: correlationId.replace(/[^A-Za-z0-9.-]/g, '').slice(0, 64) || 'failure',
      issue,
    });
  },
};

const fhirResource = z.looseObject({ resourceType: z.string(), id: z.string().optional() });
const outcome = (description: string) => ({ description, contentType: FHIR_JSON, schema: fhirResource });
const serviceRequestId = z.string().regex(/^[0-9a-f]{32}-\d{1,2}$/);

export const fhirTransaction = defineOperation({
  id: 'fhirTransaction',
  method: 'POST',
  route: 'fhir/R4',
  tag: 'fhir',
  summary:
    'A FHIR R4 transaction Bundle with one lab order (Patient, requester, ServiceRequests, Specimens); answers a transaction-response',
  access: { permission: 'orders:create' },
  body: fhirResource,
  bodyMediaTypes: [FHIR_JSON, 'application/json'],
  failures: operationOutcomeFailures,
  headers: {
    'Idempotency-Key': {
      description:
        'Retry key; without it, the Bundle’s identifier (or id) is the key: resent, it answers the first result',
    },
  },
  responses: {
    200: { ...outcome('The transaction-response Bundle'), description: 'The transaction-response Bundle' },
    400: outcome('Not a valid FHIR R4 transaction Bundle (OperationOutcome)'),
    409: outcome('The placer number exists, or the Bundle was sent before with other content (OperationOutcome)'),
    422: outcome('Not a complete lab order: each issue names its element (OperationOutcome)'),
  },
});

export const fhirReadServiceRequest = defineOperation({
  id: 'fhirReadServiceRequest',
  method: 'GET',
  route: 'fhir/R4/ServiceRequest/{id}',
  tag: 'fhir',
  summary: 'One ServiceRequest of an order, as the export shows it (audited read)',
  access: { permission: 'orders:read' },
  params: z.strictObject({ id: serviceRequestId }),
  failures: operationOutcomeFailures,
  responses: { 200: outcome('ServiceRequest') },
});

export const fhirSearchServiceRequests = defineOperation({
  id: 'fhirSearchServiceRequests',
  method: 'GET',
  route: 'fhir/R4/ServiceRequest',
  tag: 'fhir',
  summary: 'ServiceRequests by placer number: identifier=[system|]value (audited read)',
  access: { permission: 'orders:read' },
  query: z.strictObject({ identifier: z.string().min(1).max(300) }),
  failures: operationOutcomeFailures,
  responses: { 200: outcome('A searchset Bundle') },
});

export const fhirReadTask = defineOperation({
  id: 'fhirReadTask',
  method: 'GET',
  route: 'fhir/R4/Task/{id}',
  tag: 'fhir',
  summary: 'The Task of an order: its status, and the reason of a cancellation (audited read)',
  access: { permission: 'orders:read' },
  params: z.strictObject({ id: z.string().regex(/^[0-9a-f]{32}$/) }),
  failures: operationOutcomeFailures,
  responses: { 200: outcome('Task') },
});

export const fhirCapabilities = defineOperation({
  id: 'fhirCapabilities',
  method: 'GET',
  route: 'fhir/R4/metadata',
  tag: 'fhir',
  summary: 'The CapabilityStatement: what the FHIR endpoint supports',
  access: 'public',
  failures: operationOutcomeFailures,
  responses: { 200: outcome('CapabilityStatement') },
});

export const intakeOperations = [
  fhirTransaction,
  fhirReadServiceRequest,
  fhirSearchServiceRequests,
  fhirReadTask,
  fhirCapabilities,
];
