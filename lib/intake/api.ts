import { z } from 'zod';
import { defineOperation, type FailureRenderer } from '../http/operation.js';
import { buildAck } from './hl7v2/ack.js';

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

const HL7_ER7 = 'x-application/hl7-v2+er7';
const ack = (description: string) => ({ description, contentType: HL7_ER7 });

/** Failures before a message is read (credentials, media type, size) as an AR acknowledgment. */
export const hl7AckFailures: FailureRenderer = {
  contentType: `${HL7_ER7}; charset=utf-8`,
  render({ detail, errors }) {
    return buildAck(undefined, { code: 'AR', text: detail, ...(errors ? { errors } : {}) }, new Date().toISOString());
  },
};

export const hl7v2Message = defineOperation({
  id: 'hl7v2Message',
  method: 'POST',
  route: 'hl7v2',
  tag: 'hl7v2',
  summary:
    'An HL7 v2 order message (OML^O21 v2.5.1, ORM^O01 v2.3–2.5): ORC-1 NW creates, CA cancels, XO changes the status; answers an ACK',
  access: { permission: 'orders:create' },
  rawBody: { mediaTypes: [HL7_ER7, 'application/hl7-v2'] },
  failures: hl7AckFailures,
  responses: {
    200: ack('ACK with MSA-1 AA'),
    400: ack('AE or AR: the message cannot be read (ERR names the field)'),
    403: ack('AR: CA and XO need orders:update'),
    404: ack('AE: no order has the placer number (CA, XO)'),
    409: ack('AE: the control id was used with another message, or the placer number exists'),
    422: ack('AE or AR: not a complete order, or a message type, version or character set LabVault does not accept'),
  },
});

/** Failures of LDT uploads as plain text: what went wrong, then one line per problem (`line 12, field 3103: …`). */
export const ldtTextFailures: FailureRenderer = {
  contentType: 'text/plain; charset=utf-8',
  render({ status, detail, correlationId, errors }) {
    const lines = [
      `${status} ${detail}`,
      ...(errors ?? []).map((e) => `${e.path}: ${e.message}`),
      `correlation id: ${correlationId}`,
    ];
    return lines.join('\n') + '\n';
  },
};

const ldtProblem = (description: string) => ({ description, contentType: 'text/plain' });

export const ldtUpload = defineOperation({
  id: 'ldtUpload',
  method: 'POST',
  route: 'ldt',
  tag: 'ldt',
  summary:
    'An LDT 3 practice packet (8230 … 8215 orders … 8231), ISO-8859-15 unless the charset says otherwise; every order is checked before the first is stored',
  access: { permission: 'orders:create' },
  rawBody: { mediaTypes: ['text/plain', 'application/octet-stream'] },
  failures: ldtTextFailures,
  responses: {
    200: {
      description: 'The orders of the file (replayed: sent before, nothing stored)',
      schema: z.object({
        orders: z.array(z.object({ id: z.string(), line: z.string(), replayed: z.boolean() })),
      }),
    },
    400: ldtProblem('The file cannot be read: the line and field are named'),
    409: ldtProblem('An order number exists with other content'),
    422: ldtProblem('Not a practice packet of complete orders: each problem names its line and field'),
  },
});

export const intakeOperations = [
  ldtUpload,
  hl7v2Message,
  fhirTransaction,
  fhirReadServiceRequest,
  fhirSearchServiceRequests,
  fhirReadTask,
  fhirCapabilities,
];
