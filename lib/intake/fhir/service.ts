import { createHash } from 'node:crypto';
import type { RequestMeta } from '../../audit/types.js';
import { notFound } from '../../errors.js';
import { orderResources, PLACER_SYSTEM } from '../../exports/fhir.js';
import type { OrderService, StoredOrder } from '../../orders/orders.js';
import { type BundleOrder, type EntryRole, orderOfBundle } from './bundle.js';

export interface FhirIntakeDependencies {
  orders: OrderService;
}

type FhirResource = Record<string, unknown> & { resourceType: string; id: string };

/**
 * FHIR R4 on top of the order domain: a transaction Bundle becomes one order through the same
 * path as the JSON API (validation, idempotency, encryption, pseudonyms, the audit entry in the
 * same transaction); reads answer the order as the export shows it (ServiceRequests, a Task, Specimens).
 */
export class FhirIntake {
  readonly #orders: OrderService;

  constructor(dependencies: FhirIntakeDependencies) {
    this.#orders = dependencies.orders;
  }

  /** Stores the Bundle's order; a Bundle sent again (same id or identifier and content) answers the first result. */
  async transaction(
    tenant: string,
    body: unknown,
    meta: RequestMeta,
    idempotencyKey?: string,
  ): Promise<{ bundle: Record<string, unknown>; orderId: string; replayed: boolean }> {
    const mapped = orderOfBundle(body);
    const key =
      idempotencyKey ??
      (mapped.bundleKey ? `fhir-bundle:${createHash('sha256').update(mapped.bundleKey).digest('hex')}` : undefined);
    const created = await this.#orders.create(tenant, mapped.order, meta, key);
    return { bundle: responseBundle(mapped, created), orderId: created.order.id, replayed: created.replayed };
  }

  async serviceRequest(tenant: string, id: string, meta: RequestMeta): Promise<FhirResource> {
    const orderId = id.slice(0, 32);
    const stored = await this.#orders.get(tenant, orderId, meta);
    const found = resourcesOf(stored).find((r) => r.resourceType === 'ServiceRequest' && r.id === id);
    if (!found) throw notFound('No such ServiceRequest.');
    return found;
  }

  async task(tenant: string, id: string, meta: RequestMeta): Promise<FhirResource> {
    const stored = await this.#orders.get(tenant, id, meta);
    return resourcesOf(stored).find((r) => r.resourceType === 'Task') as FhirResource;
  }

  /** `identifier=[system|]value`: the ServiceRequests of the order with that placer number (LabVault's system or none). */
  async searchServiceRequests(
    tenant: string,
    identifier: { system?: string; value: string },
    meta: RequestMeta,
  ): Promise<FhirResource[]> {
    if (identifier.system !== undefined && identifier.system !== '' && identifier.system !== PLACER_SYSTEM) return [];
    const page = await this.#orders.list(tenant, { externalId: identifier.value, limit: 1 }, meta);
    const results: FhirResource[] = [];
    for (const order of page.items) {
      const stored = await this.#orders.get(tenant, order.id, meta);
      results.push(...resourcesOf(stored).filter((r) => r.resourceType === 'ServiceRequest'));
    }
    return results;
  }
}

function resourcesOf(stored: StoredOrder): FhirResource[] {
  const { own, shared } = orderResources({ ...stored.order, patientRef: stored.patientRef });
  return [...own, ...shared] as FhirResource[];
}

/** The transaction-response: one entry per request entry, in order, naming what each became. */
function responseBundle(mapped: BundleOrder, created: StoredOrder): Record<string, unknown> {
  const resources = resourcesOf(created);
  const requests = resources.filter((r) => r.resourceType === 'ServiceRequest');
  const specimenByLabId = new Map(
    resources
      .filter((r) => r.resourceType === 'Specimen')
      .map((r) => [String((r.identifier as { value: string }[])[0]?.value), r]),
  );
  const first = (type: string) => resources.find((r) => r.resourceType === type);
  const locate = (role: EntryRole): FhirResource | undefined => {
    switch (role.kind) {
      case 'ServiceRequest':
        return requests[role.examination];
      case 'Specimen':
        return specimenByLabId.get(role.specimenId);
      case 'Task':
      case 'Patient':
      case 'Practitioner':
      case 'PractitionerRole':
      case 'Organization':
        return first(role.kind);
      case 'Encounter':
        return undefined;
    }
  };
  const information = mapped.profiles.map((name) => ({
    severity: 'information',
    code: 'informational',
    details: { text: `recognised profile: ${name}` },
  }));
  return {
    resourceType: 'Bundle',
    type: 'transaction-response',
    entry: mapped.entries.map((role, index) => {
      const resource = locate(role);
      const outcome =
        index === 0 && information.length > 0
          ? { outcome: { resourceType: 'OperationOutcome', issue: information } }
          : {};
      if (!resource)
        return {
          response: {
            status: '200 OK',
            outcome: {
              resourceType: 'OperationOutcome',
              issue: [
                {
                  severity: 'information',
                  code: 'informational',
                  details: {
                    text: `${role.kind} is accepted and not kept: LabVault's order model has no place for it`,
                  },
                },
              ],
            },
          },
        };
      return {
        response: {
          status: '201 Created',
          location: `${resource.resourceType}/${resource.id}`,
          ...(typeof created.order.updatedAt === 'string' ? { lastModified: created.order.updatedAt } : {}),
          ...outcome,
        },
      };
    }),
  };
}
