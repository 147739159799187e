import { createHash } from 'node:crypto';
import type { AuditEntry } from '../audit/types.js';
import type { ImageRecord } from '../images/images.js';
import type { Order } from '../orders/schemas.js';

/** FHIR ids allow [A-Za-z0-9.-]{1,64}: pseudonyms and lab codes are mapped into that alphabet. */
function fhirId(value: string): string {
  const cleaned = value.replace(/[^A-Za-z0-9.-]/g, '.');
  return cleaned.length <= 64 ? cleaned : createHash('sha256').update(value).digest('hex').slice(0, 64);
}

/** Identifier systems: KBV's for German physician (LANR) and practice (BSNR) numbers, LabVault's own for the rest. */
const SYSTEMS = {
  lanr: 'https://fhir.kbv.de/NamingSystem/KBV_NS_Base_ANR',
  bsnr: 'https://fhir.kbv.de/NamingSystem/KBV_NS_Base_BSNR',
  patient: 'urn:labvault:patient-id',
  placer: 'urn:labvault:external-id',
  requisition: 'urn:labvault:order',
  examination: 'urn:labvault:examination',
  specimen: 'urn:labvault:specimen-id',
  specimenType: 'urn:labvault:specimen-type',
  additive: 'urn:labvault:fixative',
} as const;

/** The identifier system of the placer order number (the order's externalId) in LabVault's FHIR views. */
export const PLACER_SYSTEM: string = SYSTEMS.placer;

const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';

const patientResourceId = (patientRef: string) => fhirId(`pat-${patientRef}`);
const specimenResourceId = (orderId: string, specimenId: string) => fhirId(`${orderId}-${specimenId}`);
/** One ServiceRequest per requested examination (a CodeableConcept holds one concept): `{orderId}-{n}`. */
const serviceRequestId = (orderId: string, index: number) => `${orderId}-${index + 1}`;

const practitionerId = (physician: Order['orderingPhysician']) =>
  physician.lanr
    ? fhirId(`lanr-${physician.lanr}`)
    : fhirId(`prac-${createHash('sha256').update(physician.name).digest('hex').slice(0, 32)}`);
const organizationId = (bsnr: string) => fhirId(`bsnr-${bsnr}`);

/** ServiceRequest.status by order status. */
const REQUEST_STATUS: Record<Order['status'], string> = {
  received: 'active',
  'in-progress': 'active',
  completed: 'completed',
  cancelled: 'revoked',
};
/** Task.status by order status (the lab's work on the order). */
const TASK_STATUS: Record<Order['status'], string> = {
  received: 'requested',
  'in-progress': 'in-progress',
  completed: 'completed',
  cancelled: 'cancelled',
};

/** The resources of one order: its own, and those it shares with other orders (one per identity in an export). */
export interface OrderResources {
  own: Record<string, unknown>[];
  shared: Record<string, unknown>[];
}

/**
 * An order in FHIR R4: a ServiceRequest per examination (sharing the order as requisition), a Task
 * carrying the order's status (and a cancellation's reason), a Specimen per specimen; shared with
 * other orders: the Patient, the Practitioner, the practice (Organization, by BSNR) and the
 * practitioner's role there.
 */
export function orderResources(order: Order & { patientRef: string }): OrderResources {
  const pid = patientResourceId(order.patientRef);
  const physician = order.orderingPhysician;
  const prid = practitionerId(physician);
  const patient = {
    resourceType: 'Patient',
    id: pid,
    identifier: [{ system: SYSTEMS.patient, value: order.patient.id }],
    name: [{ family: order.patient.lastName, given: [order.patient.firstName] }],
    gender: order.patient.sex,
    birthDate: order.patient.birthDate,
  };
  const practitioner = {
    resourceType: 'Practitioner',
    id: prid,
    ...(physician.lanr ? { identifier: [{ system: SYSTEMS.lanr, value: physician.lanr }] } : {}),
    name: [{ text: physician.name }],
  };
  const shared: Record<string, unknown>[] = [patient, practitioner];
  let requester = `Practitioner/${prid}`;
  if (physician.bsnr) {
    const oid = organizationId(physician.bsnr);
    const roleId = fhirId(`role-${prid}-${physician.bsnr}`);
    shared.push(
      {
        resourceType: 'Organization',
        id: oid,
        identifier: [{ system: SYSTEMS.bsnr, value: physician.bsnr }],
        name: `BSNR ${physician.bsnr}`,
      },
      {
        resourceType: 'PractitionerRole',
        id: roleId,
        practitioner: { reference: `Practitioner/${prid}` },
        organization: { reference: `Organization/${oid}` },
      },
    );
    requester = `PractitionerRole/${roleId}`;
  }
  const specimenRefs = order.specimens.map((sp) => ({ reference: `Specimen/${specimenResourceId(order.id, sp.id)}` }));
  const requisition = { system: SYSTEMS.requisition, value: order.id };
  const requests = order.examinations.map((code, index) => ({
    resourceType: 'ServiceRequest',
    id: serviceRequestId(order.id, index),
    identifier: [
      { type: { coding: [{ system: V2_0203, code: 'PLAC' }] }, system: SYSTEMS.placer, value: order.externalId },
    ],
    requisition,
    status: REQUEST_STATUS[order.status],
    intent: 'order',
    priority: order.priority,
    code: { coding: [{ system: SYSTEMS.examination, code }], text: code },
    subject: { reference: `Patient/${pid}` },
    requester: { reference: requester },
    authoredOn: order.createdAt,
    specimen: specimenRefs,
    ...(order.clinicalInformation ? { note: [{ text: order.clinicalInformation }] } : {}),
  }));
  const task = {
    resourceType: 'Task',
    id: order.id,
    identifier: [{ system: SYSTEMS.placer, value: order.externalId }],
    groupIdentifier: requisition,
    basedOn: requests.map((r) => ({ reference: `ServiceRequest/${r.id}` })),
    status: TASK_STATUS[order.status],
    ...(order.status === 'cancelled' && order.cancellationReason
      ? { statusReason: { text: order.cancellationReason } }
      : {}),
    intent: 'order',
    priority: order.priority,
    for: { reference: `Patient/${pid}` },
    authoredOn: order.createdAt,
    lastModified: order.updatedAt,
    input: specimenRefs.map((ref) => ({ type: { text: 'specimen' }, valueReference: ref })),
  };
  const specimens = order.specimens.map((sp) => ({
    resourceType: 'Specimen',
    id: specimenResourceId(order.id, sp.id),
    identifier: [{ system: SYSTEMS.specimen, value: sp.id }],
    type: { coding: [{ system: SYSTEMS.specimenType, code: sp.type }], text: sp.type },
    subject: { reference: `Patient/${pid}` },
    request: requests.map((r) => ({ reference: `ServiceRequest/${r.id}` })),
    collection: { collectedDateTime: sp.collectedAt, ...(sp.bodySite ? { bodySite: { text: sp.bodySite } } : {}) },
    ...(sp.fixative
      ? {
          container: [
            {
              additiveCodeableConcept: { coding: [{ system: SYSTEMS.additive, code: sp.fixative }], text: sp.fixative },
            },
          ],
        }
      : {}),
  }));
  return { own: [...requests, task, ...specimens], shared };
}

/** A Media resource for a ready image; its bytes are in the archive at `url`. */
export function mediaResource(image: ImageRecord, url: string): Record<string, unknown> {
  return {
    resourceType: 'Media',
    id: image.imageId,
    status: 'completed',
    basedOn: [{ reference: `ServiceRequest/${serviceRequestId(image.orderId, 0)}` }],
    subject: { reference: `Specimen/${specimenResourceId(image.orderId, image.specimenId)}` },
    createdDateTime: image.createdAt,
    ...(image.width ? { width: image.width, height: image.height } : {}),
    content: {
      contentType: image.contentType ?? 'application/octet-stream',
      url,
      ...(image.bytes ? { size: image.bytes } : {}),
      title: image.fileName,
    },
  };
}

export function auditEventResource(entry: AuditEntry): Record<string, unknown> {
  return {
    resourceType: 'AuditEvent',
    id: fhirId(`${entry.stream}-${entry.seq}`),
    type: { system: 'urn:labvault:audit-event-type', code: entry.event.split('.')[0] ?? entry.event },
    subtype: [{ system: 'urn:labvault:audit-event', code: entry.event }],
    action: entry.action,
    recorded: entry.at,
    outcome: entry.outcome === 'success' ? '0' : '4',
    ...(entry.purpose ? { purposeOfEvent: [{ text: entry.purpose }] } : {}),
    agent: [
      {
        type: { text: entry.actor.type },
        who: { identifier: { system: `urn:labvault:${entry.actor.type}`, value: entry.actor.id } },
        requestor: true,
        ...(entry.actor.address ? { network: { address: entry.actor.address, type: '2' } } : {}),
      },
    ],
    source: { observer: { display: 'LabVault' } },
    entity: [
      { what: { identifier: { system: `urn:labvault:${entry.entity.type}`, value: entry.entity.id } } },
      ...(entry.patientRef ? [{ what: { reference: `Patient/${patientResourceId(entry.patientRef)}` } }] : []),
    ],
  };
}
