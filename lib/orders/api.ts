import { z } from 'zod';
import { defineOperation } from '../http/operation.js';
import { problemSchema } from '../http/schemas.js';
import {
  createOrderSchema,
  listOrdersQuerySchema,
  orderPageSchema,
  orderParamsSchema,
  orderSchema,
  searchOrdersSchema,
  updateOrderSchema,
} from './schemas.js';

const problems = {
  400: { description: 'Malformed request', schema: problemSchema },
  401: { description: 'Missing or invalid credentials', schema: problemSchema },
  403: { description: 'Not permitted', schema: problemSchema },
} as const;
/** What a JSON body can be refused for before it is read. */
const bodyProblems = {
  413: { description: 'Body over 1 MiB', schema: problemSchema },
  415: { description: 'Body is not JSON', schema: problemSchema },
} as const;

export const createOrder = defineOperation({
  id: 'createOrder',
  method: 'POST',
  route: 'orders',
  tag: 'orders',
  summary: 'Submit a lab order',
  access: { permission: 'orders:create' },
  body: createOrderSchema,
  headers: {
    'Idempotency-Key': {
      description: 'Retry key: the same key and body answer the first response again; another body is 409.',
    },
  },
  responses: {
    201: { description: 'The order as stored', schema: orderSchema },
    ...problems,
    409: { description: 'externalId exists, or the Idempotency-Key was used with another body', schema: problemSchema },
    ...bodyProblems,
  },
});

export const getOrder = defineOperation({
  id: 'getOrder',
  method: 'GET',
  route: 'orders/{id}',
  tag: 'orders',
  summary: 'Read one order (audited)',
  access: { permission: 'orders:read' },
  params: orderParamsSchema,
  responses: {
    200: { description: 'The order', schema: orderSchema },
    ...problems,
    404: { description: 'Unknown order', schema: problemSchema },
  },
});

export const listOrders = defineOperation({
  id: 'listOrders',
  method: 'GET',
  route: 'orders',
  tag: 'orders',
  summary: 'List orders by external id or status, paged (audited); by patient id: POST /orders/search',
  access: { permission: 'orders:read' },
  query: listOrdersQuerySchema,
  responses: { 200: { description: 'A page of orders', schema: orderPageSchema }, ...problems },
});

export const searchOrders = defineOperation({
  id: 'searchOrders',
  method: 'POST',
  route: 'orders/search',
  tag: 'orders',
  summary:
    'Orders by patient id, external id or status, paged (audited): the filters in the body, so a patient id never stands in a URL',
  access: { permission: 'orders:read' },
  body: searchOrdersSchema,
  responses: {
    200: { description: 'A page of orders', schema: orderPageSchema },
    ...problems,
    ...bodyProblems,
  },
});

export const updateOrder = defineOperation({
  id: 'updateOrder',
  method: 'PATCH',
  route: 'orders/{id}',
  tag: 'orders',
  summary: 'Change an order status or cancel it (If-Match required)',
  access: { permission: 'orders:update' },
  params: orderParamsSchema,
  body: updateOrderSchema,
  headers: { 'If-Match': { description: 'The ETag of the order as last read.', required: true } },
  responses: {
    200: { description: 'The updated order', schema: orderSchema },
    ...problems,
    404: { description: 'Unknown order', schema: problemSchema },
    409: { description: "The data subject's processing is restricted (Art. 18 GDPR)", schema: problemSchema },
    412: { description: 'ETag mismatch', schema: problemSchema },
    422: { description: 'Status change not allowed', schema: problemSchema },
    428: { description: 'If-Match missing', schema: problemSchema },
  },
});

export const idempotencyKeySchema = z.string().regex(/^[\x21-\x7e]{1,128}$/);

export const orderOperations = [createOrder, getOrder, listOrders, searchOrders, updateOrder];
