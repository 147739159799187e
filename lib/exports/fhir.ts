import { createHash } from 'node:crypto';
import type { AuditEntry } from '../audit/types.js';
import type { ImageRecord } from '../images/images.js';
import type { Order } from '../orders/schemas.js';

/** FHIR ids allow [A-Za-z0-9.-]{1,64}: pseudonyms and lab codes are mapped into that alphabet. */
export function fhirId(value: string): string {
  const cleaned = value.replace(/[^A-Za-z0-9.-]/g, '.');
  return cleaned.length <= 64 ? cleaned : createHash('sha256').update(value).digest('hex').slice(0, 64);
}

const patientId = (order: { patientRef: string }) => fhirId(`pat-${order.patientRef}`);
const specimenResourceId = (orderId: string, specimenId: string) => fhirId(`${orderId}-${specimenId}`);
const practitionerId = (order: Order) =>
  order.orderingPhysician.lanr ? fhirId(`lanr-${order.orderingPhysician.lanr}`) : fhirId(`prac-${createHash('sha256').update(order.orderingPhysician.name).digest('hex').slice(0, 32)}`);

const STATUS: Record<Order['status'], string> = { received: 'active', 'in-progress': 'active', completed: 'completed', cancelled: 'revoked' };

/** Patient, Practitioner, ServiceRequest and Specimen resources of one order (FHIR R4). */
export function orderResources(order: Order & { patientRef: string }): Record<string, unknown>[] {
  const pid = patientId(order);
  const prid = practitionerId(order);
  const patient = {
    resourceType: 'Patient',
    id: pid,
    identifier: [{ system: 'urn:labvault:patient-id', value: order.patient.id }],
    name: [{ family: order.patient.lastName, given: [order.patient.firstName] }],
    gender: order.patient.sex,
    birthDate: order.patient.birthDate,
  };
  const practitioner = {
    resourceType: 'Practitioner',
    id: prid,
    ...(order.orderingPhysician.lanr ? { identifier: [{ system: 'https://fhir.kbv.de/NamingSystem/KBV_NS_Base_ANR', value: order.orderingPhysician.lanr }] } : {}),
    name: [{ text: order.orderingPhysician.name }],
  };
  const serviceRequest = {
    resourceType: 'ServiceRequest',
    id: order.id,
    identifier: [{ system: 'urn:labvault:external-id', value: order.externalId }],
    status: STATUS[order.status],
    intent: 'order',
    priority: order.priority,
    code: { coding: order.examinations.map((code) => ({ system: 'urn:labvault:examination', code })), text: order.examinations.join(', ') },
    subject: { reference: `Patient/${pid}` },
    requester: { reference: `Practitioner/${prid}` },
    authoredOn: order.createdAt,
    specimen: order.specimens.map((sp) => ({ reference: `Specimen/${specimenResourceId(order.id, sp.id)}` })),
    ...(order.clinicalInformation ? { note: [{ text: order.clinicalInformation }] } : {}),
  };
  const specimens = order.specimens.map((sp) => ({
    resourceType: 'Specimen',
    id: specimenResourceId(order.id, sp.id),
    identifier: [{ system: 'urn:labvault:specimen-id', value: sp.id }],
    type: { coding: [{ system: 'urn:labvault:specimen-type', code: sp.type }] },
    subject: { reference: `Patient/${pid}` },
    request: [{ reference: `ServiceRequest/${order.id}` }],
    collection: { collectedDateTime: sp.collectedAt, ...(sp.bodySite ? { bodySite: { text: sp.bodySite } } : {}) },
    ...(sp.fixative ? { note: [{ text: `fixative: ${sp.fixative}` }] } : {}),
  }));
  return [patient, practitioner, serviceRequest, ...specimens];
}

/** A Media resource for a ready image; its bytes are in the archive at `url`. */
export function mediaResource(image: ImageRecord, url: string): Record<string, unknown> {
  return {
    resourceType: 'Media',
    id: image.imageId,
    status: 'completed',
    basedOn: [{ reference: `ServiceRequest/${image.orderId}` }],
    subject: { reference: `Specimen/${specimenResourceId(image.orderId, image.specimenId)}` },
    createdDateTime: image.createdAt,
    ...(image.width ? { width: image.width, height: image.height } : {}),
    content: { contentType: image.contentType ?? 'application/octet-stream', url, ...(image.bytes ? { size: image.bytes } : {}), title: image.fileName },
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
      ...(entry.patientRef ? [{ what: { reference: `Patient/${fhirId(`pat-${entry.patientRef}`)}` } }] : []),
    ],
  };
}
