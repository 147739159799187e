import { z } from 'zod';
import { defineOperation, type ResponseSpec } from '../http/operation.js';
import { line } from '../fields.js';
import { problemSchema } from '../http/schemas.js';
import { imageRecordSchema } from './schemas.js';

const p = (description: string): ResponseSpec => ({ description, schema: problemSchema });
const common = {
  400: p('Malformed request'),
  401: p('Missing or invalid credentials'),
  403: p('Not permitted'),
  404: p('Unknown order, specimen or image'),
};

const specimenId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);
const hex32 = z.string().regex(/^[0-9a-f]{32}$/);
const specimenParams = z.strictObject({ id: hex32, specimenId });
const imageParams = z.strictObject({ id: hex32, specimenId, imageId: hex32 });

const uploadRequestSchema = z
  .strictObject({
    contentType: z.enum(['image/jpeg', 'image/png', 'image/tiff', 'image/webp']),
    fileName: line(255),
  })
  .meta({ id: 'ImageUploadRequest' });

const uploadResponseSchema = z
  .object({ imageId: z.string(), uploadUrl: z.string(), expiresAt: z.string() })
  .meta({ id: 'ImageUpload' });

export const createImageUpload = defineOperation({
  id: 'createImageUpload',
  method: 'POST',
  route: 'orders/{id}/specimens/{specimenId}/images',
  tag: 'images',
  summary: 'A write-only upload URL for one image, valid 15 minutes',
  access: { permission: 'images:upload' },
  params: specimenParams,
  body: uploadRequestSchema,
  responses: {
    201: { description: 'Upload URL', schema: uploadResponseSchema },
    ...common,
    409: { description: "The data subject's processing is restricted (Art. 18 GDPR)", schema: problemSchema },
  },
});

export const listImages = defineOperation({
  id: 'listImages',
  method: 'GET',
  route: 'orders/{id}/specimens/{specimenId}/images',
  tag: 'images',
  summary: "A specimen's images with their status (audited)",
  access: { permission: 'images:read' },
  params: specimenParams,
  responses: { 200: { description: 'Images', schema: z.object({ items: z.array(imageRecordSchema) }) }, ...common },
});

export const getImage = defineOperation({
  id: 'getImage',
  method: 'GET',
  route: 'orders/{id}/specimens/{specimenId}/images/{imageId}',
  tag: 'images',
  summary: 'The cleaned image, decrypted (audited)',
  access: { permission: 'images:read' },
  params: imageParams,
  responses: { 200: { description: 'Image bytes', contentType: 'image/*' }, ...common },
});

export const getThumbnail = defineOperation({
  id: 'getImageThumbnail',
  method: 'GET',
  route: 'orders/{id}/specimens/{specimenId}/images/{imageId}/thumbnail',
  tag: 'images',
  summary: 'The 512-px thumbnail, decrypted (audited)',
  access: { permission: 'images:read' },
  params: imageParams,
  responses: { 200: { description: 'JPEG bytes', contentType: 'image/jpeg' }, ...common },
});

export const imageOperations = [createImageUpload, listImages, getImage, getThumbnail];
