// The image record as a zod schema: the API's contract and the data export describe images with it.
import { z } from 'zod';

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
