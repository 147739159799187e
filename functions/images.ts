import { recordImageProcessed } from '../lib/observability/instruments.js';
import { app, type EventGridEvent, type InvocationContext } from '@azure/functions';
import { createImageUpload, getImage, getThumbnail, listImages } from '../lib/images/api.js';
import { errorFields } from '../lib/observability/logger.js';
import { getServices } from '../lib/services.js';
import { handle, metaOf } from './http.js';

app.http(
  createImageUpload.id,
  handle(createImageUpload, async (ctx, { images }) => ({
    status: 201,
    body: await images.createUpload(ctx.tenant, ctx.params.id, ctx.params.specimenId, ctx.body, metaOf(ctx)),
  })),
);

app.http(
  listImages.id,
  handle(listImages, async (ctx, { images }) => ({
    status: 200,
    body: { items: await images.list(ctx.tenant, ctx.params.id, ctx.params.specimenId, metaOf(ctx)) },
  })),
);

for (const [operation, kind] of [
  [getImage, 'image'],
  [getThumbnail, 'thumbnail'],
] as const) {
  app.http(
    operation.id,
    handle(operation, async (ctx, { images }) => {
      const { bytes, contentType } = await images.read(
        ctx.tenant,
        { orderId: ctx.params.id, specimenId: ctx.params.specimenId, imageId: ctx.params.imageId },
        kind,
        metaOf(ctx),
      );
      return {
        status: 200,
        body: bytes,
        headers: { 'Content-Type': contentType, 'Content-Length': String(bytes.length) },
      };
    }),
  );
}

/** `/blobServices/default/containers/specimen-uploads/blobs/{tenant}/{order}/{specimen}/{image}` */
const UPLOAD_SUBJECT =
  /^\/blobServices\/default\/containers\/specimen-uploads\/blobs\/([a-z0-9-]{3,32})\/([0-9a-f]{32})\/([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/([0-9a-f]{32})$/;

// Event Grid delivers the uploads container's BlobCreated events (bicep/modules/functionapp.bicep);
// the local host feeds the same events. The event carries where the blob is, never its bytes: the
// image domain reads the size first and refuses an oversized upload without downloading it.
app.eventGrid('processSpecimenImage', {
  handler: async (event: EventGridEvent, _context: InvocationContext) => {
    const { images, logger } = await getServices();
    const match = event.eventType === 'Microsoft.Storage.BlobCreated' ? UPLOAD_SUBJECT.exec(event.subject) : null;
    if (!match) {
      logger.log('warn', 'image.event.ignored', { eventType: event.eventType });
      return;
    }
    const [, tenant = '', orderId = '', specimenId = '', imageId = ''] = match;
    const started = performance.now();
    try {
      const status = await images.processUpload({ tenant, orderId, specimenId, imageId });
      recordImageProcessed(String(status), performance.now() - started);
      logger.log('info', 'image.processed', { status, imageId });
    } catch (error) {
      recordImageProcessed('error', performance.now() - started);
      logger.log('error', 'image.processing.failed', { imageId, ...errorFields(error) });
      throw error; // redelivered by Event Grid, then dead-lettered
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
