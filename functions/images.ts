import { app, type InvocationContext } from '@azure/functions';
import { createImageUpload, getImage, getThumbnail, listImages } from '../lib/images/api.js';
import { errorFields } from '../lib/observability/logger.js';
import { getServices } from '../lib/services.js';
import { handle } from './http.js';

app.http(
  createImageUpload.id,
  handle(createImageUpload, async (ctx, { images }) => ({
    status: 201,
    body: await images.createUpload(ctx.tenant, ctx.params.id, ctx.params.specimenId, ctx.body, { actor: ctx.actor, correlationId: ctx.correlationId }),
  })),
);

app.http(
  listImages.id,
  handle(listImages, async (ctx, { images }) => ({
    status: 200,
    body: { items: await images.list(ctx.tenant, ctx.params.id, ctx.params.specimenId, { actor: ctx.actor, correlationId: ctx.correlationId }) },
  })),
);

for (const [operation, kind] of [
  [getImage, 'image'],
  [getThumbnail, 'thumbnail'],
] as const) {
  app.http(
    operation.id,
    handle(operation, async (ctx, { images }) => {
      const { bytes, contentType } = await images.read(ctx.tenant, { orderId: ctx.params.id, specimenId: ctx.params.specimenId, imageId: ctx.params.imageId }, kind, {
        actor: ctx.actor,
        correlationId: ctx.correlationId,
      });
      return { status: 200, body: bytes, headers: { 'Content-Type': contentType, 'Content-Length': String(bytes.length) } };
    }),
  );
}

// Event Grid delivers uploads on Flex Consumption; the local host's watcher does it locally.
app.storageBlob('processSpecimenImage', {
  path: 'specimen-uploads/{tenant}/{order}/{specimen}/{imageId}',
  connection: 'AzureWebJobsStorage',
  source: 'EventGrid',
  handler: async (blob: unknown, context: InvocationContext) => {
    const { tenant, order, specimen, imageId } = context.triggerMetadata as Record<string, string>;
    const { images, logger } = await getServices();
    try {
      const status = await images.processUpload({ tenant: tenant ?? '', orderId: order ?? '', specimenId: specimen ?? '', imageId: imageId ?? '' }, blob as Buffer);
      logger.log('info', 'image.processed', { status, imageId });
    } catch (error) {
      logger.log('error', 'image.processing.failed', { imageId, ...errorFields(error) });
      throw error; // retried by the trigger, then poisoned
    }
  },
});

app.timer('purgeQuarantine', {
  schedule: '0 15 3 * * *',
  handler: async () => {
    const { images, logger } = await getServices();
    logger.log('info', 'quarantine.purged', { blobs: await images.purgeQuarantine() });
  },
});
