import { describe, expect, it } from 'vitest';
import { createOrderSchema, updateOrderSchema } from '../../lib/orders/schemas.js';
import { exampleOrder } from '../support/fixtures.js';

const valid = exampleOrder();

describe('the order schema', () => {
  it('accepts the SPEC example', () => {
    expect(createOrderSchema.safeParse(valid).success).toBe(true);
  });

  it.each([
    ['an impossible date', { patient: { ...valid.patient, birthDate: '2026-02-30' } }],
    ['a birth date in the future', { patient: { ...valid.patient, birthDate: '2999-01-01' } }],
    ['a non-ISO timestamp', { specimens: [{ ...valid.specimens[0], collectedAt: '20.11.2026 09:30' }] }],
    ['duplicate specimen ids', { specimens: [valid.specimens[0], valid.specimens[0]] }],
    ['no specimens', { specimens: [] }],
    ['an unknown priority', { priority: 'whenever' }],
    ['a malformed LANR', { orderingPhysician: { ...valid.orderingPhysician, lanr: '12345' } }],
    ['a control character in a name', { patient: { ...valid.patient, lastName: 'Muster\u0007mann' } }],
    ['a blank name', { patient: { ...valid.patient, firstName: '   ' } }],
    ['an overlong external id', { externalId: 'x'.repeat(65) }],
  ])('rejects %s', (_label, change) => {
    expect(createOrderSchema.safeParse({ ...valid, ...change }).success).toBe(false);
  });

  it('allows line breaks in clinical information only', () => {
    expect(createOrderSchema.safeParse({ ...valid, clinicalInformation: 'line one\nline two' }).success).toBe(true);
    expect(createOrderSchema.safeParse({ ...valid, externalId: 'a\nb' }).success).toBe(false);
  });

  it('counts code points, not UTF-16 units', () => {
    const emoji = '😀'.repeat(100);
    expect(createOrderSchema.safeParse({ ...valid, patient: { ...valid.patient, firstName: emoji } }).success).toBe(
      true,
    );
  });

  it('requires something to change and a reason only with cancellation', () => {
    expect(updateOrderSchema.safeParse({}).success).toBe(false);
    expect(updateOrderSchema.safeParse({ cancellationReason: 'x' }).success).toBe(false);
    expect(updateOrderSchema.safeParse({ status: 'cancelled', cancellationReason: 'duplicate' }).success).toBe(true);
  });
});
