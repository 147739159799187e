import { crc32, deflateSync } from 'node:zlib';
import fc from 'fast-check';
import sharp from 'sharp';

/** A JPEG full of metadata that must not survive: GPS EXIF, an XMP packet and a comment. */
export async function jpegWithMetadata(): Promise<Buffer> {
  const base = await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 200, g: 30, b: 30 } } })
    .jpeg()
    .withExif({
      IFD0: { Make: 'SecretCam', Model: 'SN-4711-DEVICE', ImageDescription: 'Patient Erika Mustermann' },
      IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '52/1 31/1 0/1', GPSLongitudeRef: 'E', GPSLongitude: '13/1 24/1 0/1' },
    })
    .withXmp(
      '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="Dr. Anna Schmidt"/></rdf:RDF></x:xmpmeta>',
    )
    .toBuffer();
  return withJpegComment(base, 'COMMENT: Mustermann, born 1964-08-12');
}

/** Inserts a COM segment right after the SOI marker. */
export function withJpegComment(jpeg: Buffer, text: string): Buffer {
  const body = Buffer.from(text, 'latin1');
  const length = Buffer.alloc(2);
  length.writeUInt16BE(body.length + 2);
  return Buffer.concat([jpeg.subarray(0, 2), Buffer.from([0xff, 0xfe]), length, body, jpeg.subarray(2)]);
}

/** A 200 x 100 JPEG whose EXIF says "rotate 90° clockwise" (orientation 6). */
export async function rotatedJpeg(): Promise<Buffer> {
  return sharp({ create: { width: 200, height: 100, channels: 3, background: { r: 0, g: 0, b: 255 } } })
    .jpeg()
    .withMetadata({ orientation: 6 })
    .toBuffer();
}

export async function plainPng(): Promise<Buffer> {
  return sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 0, g: 128, b: 0 } } })
    .png()
    .toBuffer();
}

/** A noisy photo-like JPEG of the given megapixels (12 MP for the throughput figures). */
export async function photoJpeg(width: number, height: number): Promise<Buffer> {
  const small = await sharp({
    create: {
      width: 64,
      height: 48,
      channels: 3,
      background: 'grey',
      noise: { type: 'gaussian', mean: 128, sigma: 60 },
    },
  })
    .png()
    .toBuffer();
  return sharp(small).resize(width, height, { kernel: 'cubic' }).jpeg({ quality: 85 }).toBuffer();
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typeAndData = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndData) >>> 0);
  return Buffer.concat([length, typeAndData, crc]);
}

/** A tiny file whose header claims 20000 x 20000 pixels: a decompression bomb's calling card. */
export function pngBombHeader(width = 20_000, height = 20_000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const rows = deflateSync(Buffer.alloc((width + 1) * 4)); // a few rows of zeros; the rest "to follow"
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', rows),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Bytes that are almost images: real files with flipped, cut, inserted or overwritten bytes, and noise behind real magic numbers. */
export async function fuzzedImageFiles(count: number): Promise<Buffer[]> {
  const seeds = [
    await jpegWithMetadata(),
    await plainPng(),
    await rotatedJpeg(),
    await sharp({ create: { width: 40, height: 30, channels: 4, background: '#0a0' } })
      .webp()
      .toBuffer(),
    await sharp({ create: { width: 40, height: 30, channels: 3, background: '#00a' } })
      .tiff()
      .toBuffer(),
    pngBombHeader(),
  ];
  const magic = [
    Buffer.from([0xff, 0xd8, 0xff]),
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    Buffer.from('II*\0', 'latin1'),
    Buffer.from('RIFF\0\0\0\0WEBP', 'latin1'),
  ];
  const mutation = fc.oneof(
    fc.record({
      kind: fc.constant('flip' as const),
      seed: fc.nat(seeds.length - 1),
      at: fc.nat(1_000_000),
      bits: fc.integer({ min: 1, max: 255 }),
      count: fc.integer({ min: 1, max: 40 }),
    }),
    fc.record({ kind: fc.constant('cut' as const), seed: fc.nat(seeds.length - 1), at: fc.nat(1_000_000) }),
    fc.record({
      kind: fc.constant('insert' as const),
      seed: fc.nat(seeds.length - 1),
      at: fc.nat(1_000_000),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 512 }),
    }),
    fc.record({
      kind: fc.constant('magic-noise' as const),
      seed: fc.nat(magic.length - 1),
      bytes: fc.uint8Array({ minLength: 0, maxLength: 4096 }),
    }),
    fc.record({ kind: fc.constant('noise' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8192 }) }),
  );
  return fc.sample(mutation, { numRuns: count, seed: 20261127 }).map((m) => {
    if (m.kind === 'noise') return Buffer.from(m.bytes);
    if (m.kind === 'magic-noise') return Buffer.concat([magic[m.seed] ?? Buffer.alloc(0), Buffer.from(m.bytes)]);
    const source = Buffer.from(seeds[m.seed] ?? Buffer.alloc(1));
    // Past the magic number mostly (fast-check favours small values), so the decoder gets to see it.
    const at = m.at < 50_000 ? m.at % source.length : 12 + (m.at % Math.max(1, source.length - 12));
    if (m.kind === 'cut') return source.subarray(0, Math.max(1, at));
    if (m.kind === 'insert') return Buffer.concat([source.subarray(0, at), Buffer.from(m.bytes), source.subarray(at)]);
    for (let i = 0; i < m.count; i++) {
      const pos = (at + i * 7919) % source.length;
      source[pos] = (source[pos] ?? 0) ^ m.bits;
    }
    return source;
  });
}

/**
 * Stores bytes where an upload link would put them (the uploads container) and processes the upload,
 * as the image function does when the blob's event arrives. For seeding and in-process tests.
 */
export async function uploadAndProcess(
  services: {
    storage: { blobService: import('@azure/storage-blob').BlobServiceClient };
    images: {
      processUpload(path: { tenant: string; orderId: string; specimenId: string; imageId: string }): Promise<string>;
    };
  },
  path: { tenant: string; orderId: string; specimenId: string; imageId: string },
  bytes: Buffer,
): Promise<string> {
  const blob = services.storage.blobService
    .getContainerClient('specimen-uploads')
    .getBlockBlobClient(`${path.tenant}/${path.orderId}/${path.specimenId}/${path.imageId}`);
  await blob.upload(bytes, bytes.length);
  return services.images.processUpload(path);
}
