import { z } from 'zod';
import { code, freeText, line, pageQuery } from '../fields.js';

const ORDER_STATUSES = ['received', 'in-progress', 'completed', 'cancelled'] as const;
const orderStatusSchema = z.enum(ORDER_STATUSES);
export type OrderStatus = z.infer<typeof orderStatusSchema>;

/** Which status may follow which; completed and cancelled are final. */
export const STATUS_TRANSITIONS: Record<OrderStatus, readonly OrderStatus[]> = {
  received: ['in-progress', 'cancelled'],
  'in-progress': ['completed', 'cancelled'],
  completed: [],
  cancelled: [],
};

const pastDate = z.iso
  .date()
  .refine((d) => d <= new Date().toISOString().slice(0, 10), { message: 'must not be in the future' });

const patientSchema = z.strictObject({
  id: line(64),
  firstName: line(100),
  lastName: line(100),
  birthDate: pastDate,
  sex: z.enum(['female', 'male', 'other', 'unknown']),
});

const physicianSchema = z.strictObject({
  name: line(200),
  lanr: z
    .string()
    .regex(/^\d{9}$/, 'nine digits')
    .optional(),
  bsnr: z
    .string()
    .regex(/^\d{9}$/, 'nine digits')
    .optional(),
});

export const specimenSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, dot, dash, underscore; at most 64'),
  type: code(),
  bodySite: line(200).optional(),
  collectedAt: z.iso.datetime({ offset: true }),
  fixative: code().optional(),
});

export const createOrderSchema = z
  .strictObject({
    externalId: line(64),
    patient: patientSchema,
    orderingPhysician: physicianSchema,
    priority: z.enum(['routine', 'urgent', 'asap', 'stat']),
    clinicalInformation: freeText(4000).optional(),
    specimens: z
      .array(specimenSchema)
      .min(1)
      .max(50)
      .refine((list) => new Set(list.map((s) => s.id)).size === list.length, {
        message: 'specimen ids must be unique',
      }),
    examinations: z.array(code()).min(1).max(20),
  })
  .meta({ id: 'OrderInput' });
export type CreateOrderInput = z.infer<typeof createOrderSchema>;

export const orderSchema = createOrderSchema
  .extend({
    id: z.string(),
    status: orderStatusSchema,
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
    cancellationReason: z.string().optional(),
  })
  .meta({ id: 'Order' });
export type Order = z.infer<typeof orderSchema>;

export const updateOrderSchema = z
  .strictObject({
    status: orderStatusSchema.optional(),
    cancellationReason: freeText(500).optional(),
  })
  .refine((b) => b.status !== undefined || b.cancellationReason !== undefined, { message: 'nothing to change' })
  .refine((b) => b.cancellationReason === undefined || b.status === 'cancelled', {
    message: 'a cancellation reason goes with status "cancelled"',
    path: ['cancellationReason'],
  })
  .meta({ id: 'OrderUpdate' });
export type UpdateOrderInput = z.infer<typeof updateOrderSchema>;

const orderIdSchema = z.string().regex(/^[0-9a-f]{32}$/);
export const orderParamsSchema = z.strictObject({ id: orderIdSchema });

/**
 * `GET /orders` filters. A patient id is not taken from a URL: URLs end up in proxies' and the
 * platform's request logs and telemetry, so it goes in the body of `POST /orders/search`.
 */
export const listOrdersQuerySchema = z.strictObject(
  {
    externalId: line(64).optional(),
    status: orderStatusSchema.optional(),
    ...pageQuery,
  },
  {
    error: (issue) =>
      issue.code === 'unrecognized_keys' && issue.keys.includes('patientId')
        ? 'patient ids are not taken in URLs (they would stay in request logs): send POST /api/orders/search with {"patientId": …}'
        : undefined,
  },
);

/** `POST /orders/search`: the same filters as `GET /orders` and the patient id, in the body. */
export const searchOrdersSchema = z
  .strictObject({
    patientId: line(64).optional(),
    externalId: line(64).optional(),
    status: orderStatusSchema.optional(),
    limit: z.number().int().min(1).max(200).default(50),
    continuationToken: z.string().max(2048).optional(),
  })
  .meta({ id: 'OrderSearch' });
export type OrderFilters = Omit<z.infer<typeof searchOrdersSchema>, 'limit' | 'continuationToken'>;

export const orderPageSchema = z
  .object({ items: z.array(orderSchema), continuationToken: z.string().optional() })
  .meta({ id: 'OrderPage' });
