import type { CreateOrderInput } from '../../lib/orders/schemas.js';

/** The SPEC's example order; recognisable strings so tests can look for leaks. */
export function exampleOrder(overrides: Partial<CreateOrderInput> = {}): CreateOrderInput {
  return {
    externalId: 'LIS-2026-000123',
    patient: { id: 'A123456789', firstName: 'Erika', lastName: 'Mustermann', birthDate: '1964-08-12', sex: 'female' },
    orderingPhysician: { name: 'Dr. med. Anna Schmidt', lanr: '123456601', bsnr: '031234500' },
    priority: 'routine',
    clinicalInformation: 'Suspicious lesion, left forearm',
    specimens: [
      {
        id: 'S-0001',
        type: 'biopsy',
        bodySite: 'left forearm',
        collectedAt: '2026-11-20T09:30:00Z',
        fixative: 'formalin',
      },
    ],
    examinations: ['histology'],
    ...overrides,
  };
}

/** Strings of the example order that must never appear in storage, logs or audit entries. */
export const PATIENT_STRINGS = [
  'A123456789',
  'Erika',
  'Mustermann',
  '1964-08-12',
  'Anna Schmidt',
  'Suspicious lesion',
  'left forearm',
  'LIS-2026-000123',
];
