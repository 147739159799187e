import { createHash } from 'node:crypto';
import sharp from 'sharp';

export const IMAGE_LIMITS = {
  maxBytes: 50 * 1024 * 1024,
  maxPixels: 100_000_000,
  thumbnailPixels: 512,
} as const;

export type RejectionReason = 'empty' | 'too-large' | 'unsupported-type' | 'too-many-pixels' | 'corrupt';
type ImageFormat = 'jpeg' | 'png' | 'tiff' | 'webp';

interface CleanImage {
  /** The type the bytes are, whatever the name or header claimed. */
  detectedFormat: ImageFormat;
  contentType: 'image/jpeg' | 'image/png' | 'image/webp';
  image: Buffer;
  thumbnail: Buffer;
  width: number;
  height: number;
  uploadBytes: number;
  uploadSha256: string;
  cleanSha256: string;
}

export type InspectionResult = { ok: true; image: CleanImage } | { ok: false; reason: RejectionReason; detail: string };

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The real type from the first bytes; anything but JPEG, PNG, TIFF and WebP is refused. */
function sniffFormat(bytes: Buffer): ImageFormat | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= 8 && bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])))
    return 'png';
  if (
    bytes.length >= 4 &&
    (bytes.subarray(0, 4).equals(Buffer.from([0x49, 0x49, 0x2a, 0x00])) ||
      bytes.subarray(0, 4).equals(Buffer.from([0x4d, 0x4d, 0x00, 0x2a])))
  )
    return 'tiff';
  if (
    bytes.length >= 12 &&
    bytes.subarray(0, 4).toString('latin1') === 'RIFF' &&
    bytes.subarray(8, 12).toString('latin1') === 'WEBP'
  )
    return 'webp';
  return undefined;
}

/**
 * Checks an upload and makes the stored form: the type from the bytes, size and pixel limits read
 * from the header before any decoding (decompression bombs), then one decode that applies the EXIF
 * orientation and writes the pixels again without any metadata (EXIF, XMP, IPTC, ICC, comments,
 * GPS, embedded thumbnails), and a thumbnail of at most 512 px.
 */
export async function inspectAndClean(upload: Buffer): Promise<InspectionResult> {
  if (upload.length === 0) return { ok: false, reason: 'empty', detail: 'the file is empty' };
  if (upload.length > IMAGE_LIMITS.maxBytes)
    return { ok: false, reason: 'too-large', detail: `the file exceeds ${IMAGE_LIMITS.maxBytes} bytes` };
  const format = sniffFormat(upload);
  if (!format)
    return { ok: false, reason: 'unsupported-type', detail: 'the bytes are not a JPEG, PNG, TIFF or WebP image' };
  let width: number;
  let height: number;
  try {
    const meta = await sharp(upload, { limitInputPixels: false }).metadata();
    width = meta.width ?? 0;
    height = meta.height ?? 0;
  } catch {
    return { ok: false, reason: 'corrupt', detail: 'the image header cannot be read' };
  }
  if (width <= 0 || height <= 0) return { ok: false, reason: 'corrupt', detail: 'the image has no dimensions' };
  if (width * height > IMAGE_LIMITS.maxPixels)
    return { ok: false, reason: 'too-many-pixels', detail: `the image has more than ${IMAGE_LIMITS.maxPixels} pixels` };
  try {
    // failOn 'truncated' refuses a cut-off file instead of filling in grey.
    const pipeline = sharp(upload, {
      limitInputPixels: IMAGE_LIMITS.maxPixels,
      failOn: 'truncated',
      sequentialRead: true,
    }).rotate();
    const encoded =
      format === 'jpeg'
        ? pipeline.jpeg({ quality: 90 })
        : format === 'webp'
          ? pipeline.webp({ quality: 90 })
          : pipeline.png({ compressionLevel: 6 });
    // The thumbnail is made from the upload in parallel: JPEG shrink-on-load decodes at 1/8 scale, far
    // cheaper than decoding the re-encoded image again. Like every sharp output it carries no metadata.
    const [{ data: image, info }, thumbnail] = await Promise.all([
      encoded.toBuffer({ resolveWithObject: true }),
      sharp(upload, { limitInputPixels: IMAGE_LIMITS.maxPixels, failOn: 'truncated' })
        .rotate()
        .resize(IMAGE_LIMITS.thumbnailPixels, IMAGE_LIMITS.thumbnailPixels, { fit: 'inside', withoutEnlargement: true })
        .jpeg({ quality: 80 })
        .toBuffer(),
    ]);
    return {
      ok: true,
      image: {
        detectedFormat: format,
        contentType: format === 'jpeg' ? 'image/jpeg' : format === 'webp' ? 'image/webp' : 'image/png',
        image,
        thumbnail,
        width: info.width,
        height: info.height,
        uploadBytes: upload.length,
        uploadSha256: sha256(upload),
        cleanSha256: sha256(image),
      },
    };
  } catch {
    return { ok: false, reason: 'corrupt', detail: 'the image cannot be decoded (truncated or damaged)' };
  }
}
