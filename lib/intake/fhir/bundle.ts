import type {
  Bundle,
  BundleEntry,
  CodeableConcept,
  Identifier,
  Organization,
  Patient,
  Practitioner,
  PractitionerRole,
  Reference,
  Resource,
  ServiceRequest,
  Specimen,
} from '@medplum/fhirtypes';
import { type FieldError, invalidInput, unprocessable } from '../../errors.js';
import { createOrderSchema, type CreateOrderInput } from '../../orders/schemas.js';
import { fhirStructureErrors } from './validation.js';

/** Identifier systems of German physician (LANR) and practice (BSNR) numbers: KBV's and the older fhir.de ones. */
export const LANR_SYSTEMS = new Set([
  'https://fhir.kbv.de/NamingSystem/KBV_NS_Base_ANR',
  'http://fhir.de/NamingSystem/kbv/lanr',
  'http://fhir.de/sid/kbv/lanr',
]);
export const BSNR_SYSTEMS = new Set([
  'https://fhir.kbv.de/NamingSystem/KBV_NS_Base_BSNR',
  'http://fhir.de/NamingSystem/kbv/bsnr',
  'http://fhir.de/sid/kbv/bsnr',
]);

/** Profiles recognised by `meta.profile` (never required): MII Pathologie, MII Laborbefund, KBV MIO Laborbefund. */
const KNOWN_PROFILES: readonly [RegExp, string][] = [
  [/mii-pr-patho-service-request/, 'MII Pathologie ServiceRequest'],
  [/mii-pr-patho-specimen/, 'MII Pathologie Specimen'],
  [/medizininformatik-initiative\.de\/fhir\/core\/modul-labor\//, 'MII Laborbefund'],
  [/fhir\.kbv\.de\/StructureDefinition\/KBV_PR_MIO_LAB_/, 'KBV MIO Laborbefund'],
];

/** What one entry of the request became: the response entry is built from it after the order is stored. */
export type EntryRole =
  | { kind: 'ServiceRequest'; examination: number }
  | { kind: 'Specimen'; specimenId: string }
  | { kind: 'Task' }
  | { kind: 'Patient' }
  | { kind: 'Practitioner' }
  | { kind: 'PractitionerRole' }
  | { kind: 'Organization' }
  | { kind: 'Encounter' };

export interface BundleOrder {
  order: CreateOrderInput;
  /** The role of each request entry, in the Bundle's order. */
  entries: EntryRole[];
  /** The Bundle's own id or identifier: what makes a resent Bundle a replay. */
  bundleKey?: string;
  /** Names of the profiles recognised in `meta.profile`. */
  profiles: string[];
}

const ACCEPTED = new Set([
  'Patient',
  'Practitioner',
  'PractitionerRole',
  'Organization',
  'ServiceRequest',
  'Specimen',
  'Task',
  'Encounter',
]);

/** Codes of LabVault's order model are lowercase letters, digits and dashes. */
const codeOf = (value: string): string =>
  value
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);

function conceptCode(concept: CodeableConcept | undefined): string | undefined {
  const raw = concept?.coding?.find((c) => c.code)?.code ?? concept?.text;
  return raw === undefined ? undefined : codeOf(raw) || undefined;
}

function conceptText(concept: CodeableConcept | undefined): string | undefined {
  return (
    concept?.text ?? concept?.coding?.find((c) => c.display)?.display ?? concept?.coding?.find((c) => c.code)?.code
  );
}

function isPlacer(identifier: Identifier): boolean {
  return identifier.type?.coding?.some((c) => c.code === 'PLAC') ?? false;
}

/**
 * Maps a FHIR R4 transaction Bundle to one LabVault order, or throws with every problem found,
 * each at its FHIRPath (`Bundle.entry[3].resource.collection.collectedDateTime`). One Bundle holds
 * one order (its ServiceRequests share one placer number), so the transaction stays atomic: the
 * order with its index rows and audit entry is one storage transaction.
 */
export function orderOfBundle(body: unknown): BundleOrder {
  if (typeof body !== 'object' || body === null || (body as { resourceType?: unknown }).resourceType !== 'Bundle')
    throw invalidInput('Send a FHIR R4 Bundle of type transaction.', [
      { path: 'Bundle', message: 'resourceType must be Bundle' },
    ]);
  const structural = fhirStructureErrors(body);
  if (structural.length > 0) throw invalidInput('The Bundle is not valid FHIR R4.', structural);
  const bundle = body as Bundle;
  if (bundle.type !== 'transaction')
    throw invalidInput('Only transaction Bundles are accepted.', [
      { path: 'Bundle.type', message: 'must be transaction' },
    ]);
  const entries = bundle.entry ?? [];
  const errors: FieldError[] = [];
  const at = (i: number, element?: string) => `Bundle.entry[${i}].resource${element ? `.${element}` : ''}`;

  // Index the entries by fullUrl and by Type/id, so references resolve either way.
  const byReference = new Map<string, number>();
  entries.forEach((entry: BundleEntry, i) => {
    const resource = entry.resource;
    if (!resource) {
      errors.push({ path: `Bundle.entry[${i}]`, message: 'an entry needs a resource' });
      return;
    }
    if (!ACCEPTED.has(resource.resourceType))
      errors.push({ path: at(i), message: `${resource.resourceType} is not part of a lab order` });
    if (entry.request?.method !== undefined && entry.request.method !== 'POST')
      errors.push({ path: `Bundle.entry[${i}].request.method`, message: 'only POST (create) is supported' });
    if (entry.fullUrl) byReference.set(entry.fullUrl, i);
    if (resource.id) byReference.set(`${resource.resourceType}/${resource.id}`, i);
  });
  if (errors.length > 0) throw unprocessable('The Bundle holds entries LabVault cannot process.', errors);

  const resourceAt = (i: number) => entries[i]?.resource as Resource;
  const indicesOf = (type: string) => entries.flatMap((e, i) => (e.resource?.resourceType === type ? [i] : []));
  const resolve = (reference: Reference | undefined, path: string, types: readonly string[]): number | undefined => {
    if (!reference?.reference) return undefined;
    const target = byReference.get(reference.reference);
    if (target === undefined || !types.includes(resourceAt(target).resourceType)) {
      errors.push({ path, message: `does not resolve to a ${types.join(' or ')} of this Bundle` });
      return undefined;
    }
    return target;
  };

  const profiles = new Set<string>();
  for (const entry of entries)
    for (const profile of entry.resource?.meta?.profile ?? [])
      for (const [pattern, name] of KNOWN_PROFILES) if (pattern.test(profile)) profiles.add(name);

  // The order: the ServiceRequests, one placer number among them.
  const requestIndices = indicesOf('ServiceRequest');
  if (requestIndices.length === 0)
    throw unprocessable('A lab order needs a ServiceRequest.', [
      { path: 'Bundle.entry', message: 'no ServiceRequest' },
    ]);
  const placerOf = (i: number): string | undefined => {
    const request = resourceAt(i) as ServiceRequest;
    return (request.identifier?.find(isPlacer) ?? request.identifier?.[0])?.value ?? request.requisition?.value;
  };
  const placers = new Set(requestIndices.map(placerOf).filter((p): p is string => p !== undefined));
  if (placers.size > 1)
    throw unprocessable('One transaction Bundle carries one order: its ServiceRequests share one placer number.', [
      { path: 'Bundle.entry', message: `${placers.size} different placer numbers` },
    ]);
  const first = requestIndices[0] as number;
  const firstRequest = resourceAt(first) as ServiceRequest;
  const externalId = [...placers][0];
  if (externalId === undefined)
    errors.push({
      path: at(first, 'identifier'),
      message: 'the placer order number (identifier of type PLAC) is required',
    });

  // Where each field of the order came from, so a rule of the order model points into the Bundle.
  const origins = new Map<string, string>([['/externalId', at(first, 'identifier')]]);

  const patientIndex = resolve(firstRequest.subject, at(first, 'subject'), ['Patient']);
  if (firstRequest.subject === undefined)
    errors.push({ path: at(first, 'subject'), message: 'the patient is required' });
  for (const i of requestIndices.slice(1)) {
    const subject = resolve((resourceAt(i) as ServiceRequest).subject, at(i, 'subject'), ['Patient']);
    if (subject !== patientIndex) errors.push({ path: at(i, 'subject'), message: 'must name the same patient' });
  }
  let patient: Partial<CreateOrderInput['patient']> = {};
  if (patientIndex !== undefined) {
    const resource = resourceAt(patientIndex) as Patient;
    const identifier =
      resource.identifier?.find((id) => id.type?.coding?.some((c) => c.code === 'MR' || c.code === 'PI')) ??
      resource.identifier?.[0];
    const name = resource.name?.find((n) => n.use === 'official') ?? resource.name?.[0];
    patient = {
      ...(identifier?.value ? { id: identifier.value } : {}),
      ...(name?.given?.length ? { firstName: name.given.join(' ') } : {}),
      ...(name?.family ? { lastName: name.family } : {}),
      ...(resource.birthDate ? { birthDate: resource.birthDate } : {}),
      ...(resource.gender ? { sex: resource.gender } : {}),
    };
    origins.set('/patient', at(patientIndex));
    origins.set('/patient/id', at(patientIndex, 'identifier'));
    origins.set('/patient/firstName', at(patientIndex, 'name.given'));
    origins.set('/patient/lastName', at(patientIndex, 'name.family'));
    origins.set('/patient/birthDate', at(patientIndex, 'birthDate'));
    origins.set('/patient/sex', at(patientIndex, 'gender'));
  }

  // The ordering physician: requester → PractitionerRole (practitioner + organization) | Practitioner.
  let physician: Partial<CreateOrderInput['orderingPhysician']> = {};
  const requesterIndex = resolve(firstRequest.requester, at(first, 'requester'), ['Practitioner', 'PractitionerRole']);
  if (firstRequest.requester === undefined)
    errors.push({ path: at(first, 'requester'), message: 'the ordering physician is required' });
  if (requesterIndex !== undefined) {
    let practitionerIndex: number | undefined = requesterIndex;
    let organizationIndex: number | undefined;
    if (resourceAt(requesterIndex).resourceType === 'PractitionerRole') {
      const role = resourceAt(requesterIndex) as PractitionerRole;
      practitionerIndex = resolve(role.practitioner, at(requesterIndex, 'practitioner'), ['Practitioner']);
      organizationIndex = resolve(role.organization, at(requesterIndex, 'organization'), ['Organization']);
    }
    if (practitionerIndex !== undefined) {
      const practitioner = resourceAt(practitionerIndex) as Practitioner;
      const name = practitioner.name?.[0];
      const display =
        name?.text ?? [...(name?.prefix ?? []), ...(name?.given ?? []), name?.family].filter(Boolean).join(' ');
      const lanr = practitioner.identifier?.find((id) => id.system && LANR_SYSTEMS.has(id.system))?.value;
      physician = { ...(display ? { name: display } : {}), ...(lanr ? { lanr } : {}) };
      origins.set('/orderingPhysician', at(practitionerIndex));
      origins.set('/orderingPhysician/name', at(practitionerIndex, 'name'));
      origins.set('/orderingPhysician/lanr', at(practitionerIndex, 'identifier'));
    }
    if (organizationIndex !== undefined) {
      const organization = resourceAt(organizationIndex) as Organization;
      const bsnr = organization.identifier?.find((id) => id.system && BSNR_SYSTEMS.has(id.system))?.value;
      if (bsnr) physician.bsnr = bsnr;
      origins.set('/orderingPhysician/bsnr', at(organizationIndex, 'identifier'));
    }
  }

  // Examinations (one per ServiceRequest code), clinical information from notes and reasons.
  const roles: EntryRole[] = entries.map((e) => ({ kind: e.resource?.resourceType }) as EntryRole);
  const examinations: string[] = [];
  const notes: string[] = [];
  for (const i of requestIndices) {
    const request = resourceAt(i) as ServiceRequest;
    const code = conceptCode(request.code);
    if (code === undefined) errors.push({ path: at(i, 'code'), message: 'the requested examination is required' });
    else {
      origins.set(`/examinations/${examinations.length}`, at(i, 'code'));
      roles[i] = { kind: 'ServiceRequest', examination: examinations.length };
      examinations.push(code);
    }
    for (const note of request.note ?? []) if (note.text && !notes.includes(note.text)) notes.push(note.text);
    for (const reason of request.reasonCode ?? []) {
      const text = conceptText(reason);
      if (text && !notes.includes(text)) notes.push(text);
    }
  }
  origins.set('/clinicalInformation', at(first, 'note'));
  origins.set('/priority', at(first, 'priority'));

  // Specimens: those the requests name, and those that name a request.
  const requestRefs = new Set(requestIndices.flatMap((i) => entries[i]?.fullUrl ?? []));
  for (const i of requestIndices) requestRefs.add(`ServiceRequest/${resourceAt(i).id}`);
  const specimenIndices = new Set<number>();
  for (const i of requestIndices)
    (resourceAt(i) as ServiceRequest).specimen?.forEach((ref, k) => {
      const target = resolve(ref, at(i, `specimen[${k}]`), ['Specimen']);
      if (target !== undefined) specimenIndices.add(target);
    });
  for (const i of indicesOf('Specimen'))
    if ((resourceAt(i) as Specimen).request?.some((r) => r.reference && requestRefs.has(r.reference)))
      specimenIndices.add(i);
  for (const i of indicesOf('Specimen'))
    if (!specimenIndices.has(i)) errors.push({ path: at(i), message: 'belongs to no ServiceRequest of this Bundle' });
  const specimens: Partial<CreateOrderInput['specimens'][number]>[] = [];
  for (const i of [...specimenIndices].sort((a, b) => a - b)) {
    const specimen = resourceAt(i) as Specimen;
    const k = specimens.length;
    const id = specimen.identifier?.[0]?.value ?? specimen.accessionIdentifier?.value;
    const type = conceptCode(specimen.type);
    const bodySite = conceptText(specimen.collection?.bodySite);
    const fixative = conceptCode(specimen.container?.[0]?.additiveCodeableConcept);
    specimens.push({
      ...(id ? { id } : {}),
      ...(type ? { type } : {}),
      ...(bodySite ? { bodySite } : {}),
      ...(specimen.collection?.collectedDateTime ? { collectedAt: specimen.collection.collectedDateTime } : {}),
      ...(fixative ? { fixative } : {}),
    });
    roles[i] = { kind: 'Specimen', specimenId: id ?? '' };
    origins.set(`/specimens/${k}`, at(i));
    origins.set(`/specimens/${k}/id`, at(i, 'identifier'));
    origins.set(`/specimens/${k}/type`, at(i, 'type'));
    origins.set(`/specimens/${k}/bodySite`, at(i, 'collection.bodySite'));
    origins.set(`/specimens/${k}/collectedAt`, at(i, 'collection.collectedDateTime'));
    origins.set(`/specimens/${k}/fixative`, at(i, 'container[0].additiveCodeableConcept'));
  }
  origins.set('/specimens', at(first, 'specimen'));
  if (errors.length > 0) throw unprocessable('The Bundle is not a complete lab order.', errors);

  const candidate = {
    externalId,
    patient,
    orderingPhysician: physician,
    priority: firstRequest.priority ?? 'routine',
    ...(notes.length > 0 ? { clinicalInformation: notes.join('\n') } : {}),
    specimens,
    examinations,
  };
  const parsed = createOrderSchema.safeParse(candidate);
  if (!parsed.success) {
    throw unprocessable(
      'The Bundle does not meet the rules of a lab order.',
      parsed.error.issues.map((issue) => {
        const pointer = '/' + issue.path.map(String).join('/');
        const missing = issue.code === 'invalid_type' && /received undefined/.test(issue.message);
        return { path: originOf(origins, pointer, issue.path), message: missing ? 'is required' : issue.message };
      }),
    );
  }
  const bundleKey = bundle.identifier?.value
    ? `${bundle.identifier.system ?? ''}|${bundle.identifier.value}`
    : bundle.id;
  return {
    order: parsed.data,
    entries: roles,
    ...(bundleKey ? { bundleKey } : {}),
    profiles: [...profiles],
  };
}

/** The FHIRPath a rule of the order model refers to: the longest known prefix of its JSON pointer. */
function originOf(origins: Map<string, string>, pointer: string, path: readonly PropertyKey[]): string {
  for (let n = path.length; n >= 0; n--) {
    const prefix = '/' + path.slice(0, n).map(String).join('/');
    const origin = origins.get(n === 0 ? '/' : prefix);
    if (origin) return origin;
  }
  return `Bundle (${pointer})`;
}
