import { z } from 'zod';
import { defineOperation, type ResponseSpec } from '../http/operation.js';
import { line, problemSchema } from '../http/schemas.js';

const p = (description: string): ResponseSpec => ({ description, schema: problemSchema });
const common = { 400: p('Malformed request'), 401: p('Missing or invalid credentials'), 403: p('Not permitted'), 404: p('Unknown order, specimen or image') };

const specimenId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);
const hex32 = z.string().regex(/^[0-9a-f]{32}$/);
export const specimenParams = z.strictObject({ id: hex32, specimenId });
export const imageParams = z.strictObject({ id: hex32, specimenId, imageId: hex32 });

export const uploadRequestSchema = z
  .strictObject({
    contentType: z.enum(['image/jpeg', 'image/png', 'image/tiff', 'image/webp']),
    fileName: line(255),
  })
  .meta({ id: 'ImageUploadRequest' });

export const uploadResponseSchema = z.object({ imageId: z.string(), uploadUrl: z.string(), expiresAt: z.string() }).meta({ id: 'ImageUpload' });

export const imageRecordSchema = z
  .object({
    imageId: z.string(),
    orderId: z.string(),
    specimenId: z.string(),
    status: z.enum(['pending', 'ready', 'rejected']),
    reason: z.string().optional(),
    fileName: z.string(),
    declaredContentType: z.string(),
    contentType: z.string().optional(),
    width: z.number().optional(),
    height: z.number().optional(),
    uploadBytes: z.number().optional(),
    uploadSha256: z.string().optional(),
    sha256: z.string().optional(),
    bytes: z.number().optional(),
    thumbnailBytes: z.number().optional(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'SpecimenImage' });

export const createImageUpload = defineOperation({
  id: 'createImageUpload',
  method: 'POST',
  route: 'orders/{id}/specimens/{specimenId}/images',
  tag: 'images',
  summary: 'A write-only upload URL for one image, valid 15 minutes',
  access: { permission: 'images:upload' },
  params: specimenParams,
  body: uploadRequestSchema,
  responses: { 201: { description: 'Upload URL', schema: uploadResponseSchema }, ...common },
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
