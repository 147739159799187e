import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DecryptionError, type FieldBinding } from './field-cipher.js';

/**
 * Streaming encryption for blobs: AES-256-GCM in fixed-size chunks (64 KiB, where GCM runs fastest
 * here), each authenticated on its own with its index, the binding and whether it is the last, so
 * a reordered, cut or spliced blob fails. Memory stays at one chunk whatever the blob's size.
 *
 * Layout: "LVC1" | u8 len | key version | u32 chunk size | 8-byte nonce prefix | chunks (ct | tag).
 * The nonce of chunk i is prefix | u32 i; a fresh prefix per blob keeps nonces unique per key.
 */
const MAGIC = Buffer.from('LVC1');
const TAG = 16;
const BLOB_CHUNK_SIZE = 64 * 1024;

function nonce(prefix: Buffer, index: number): Buffer {
  const n = Buffer.alloc(12);
  prefix.copy(n, 0);
  n.writeUInt32BE(index, 8);
  return n;
}

function aad(binding: FieldBinding, index: number, final: boolean): Buffer {
  return Buffer.from(JSON.stringify(['labvault-blob', 1, binding.tenant, binding.record, binding.field, index, final]));
}

export function createEncryptStream(
  key: Buffer,
  keyVersion: string,
  binding: FieldBinding,
  chunkSize = BLOB_CHUNK_SIZE,
): Transform {
  const prefix = randomBytes(8);
  let pending: Buffer = Buffer.alloc(0);
  let index = 0;
  let headerSent = false;
  const seal = (plain: Buffer, final: boolean): Buffer => {
    const cipher = createCipheriv('aes-256-gcm', key, nonce(prefix, index));
    cipher.setAAD(aad(binding, index, final));
    index++;
    return Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  };
  const header = (): Buffer => {
    const version = Buffer.from(keyVersion, 'utf8');
    const size = Buffer.alloc(4);
    size.writeUInt32BE(chunkSize);
    return Buffer.concat([MAGIC, Buffer.from([version.length]), version, size, prefix]);
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      if (!headerSent) {
        this.push(header());
        headerSent = true;
      }
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      // Keep at least one chunk back: only the end of the input says which chunk is final.
      while (pending.length > chunkSize) {
        this.push(seal(pending.subarray(0, chunkSize), false));
        pending = pending.subarray(chunkSize);
      }
      callback();
    },
    flush(callback: TransformCallback) {
      if (!headerSent) this.push(header());
      this.push(seal(pending, true));
      callback();
    },
  });
}

/** Reads the key version from an encrypted blob's first bytes. */
function readKeyVersion(head: Buffer): string {
  if (head.length < 5 || !head.subarray(0, 4).equals(MAGIC)) throw new DecryptionError('not a LabVault blob');
  return head.subarray(5, 5 + (head[4] ?? 0)).toString('utf8');
}

export function createDecryptStream(
  resolveKey: (keyVersion: string) => Promise<Buffer>,
  binding: FieldBinding,
): Transform {
  let buffered: Buffer = Buffer.alloc(0);
  let key: Buffer | undefined;
  let prefix: Buffer | undefined;
  let chunkSize = 0;
  let index = 0;
  let ended = false;
  const open = (sealed: Buffer, final: boolean): Buffer => {
    if (!key || !prefix) throw new DecryptionError('blob header missing');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, nonce(prefix, index));
      decipher.setAAD(aad(binding, index, final));
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
      index++;
      return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG)), decipher.final()]);
    } catch {
      throw new DecryptionError('blob chunk failed authentication');
    }
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      void (async () => {
        buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
        if (!key) {
          if (buffered.length < 5) return;
          const versionLength = buffered[4] ?? 0;
          const headerLength = 5 + versionLength + 4 + 8;
          if (buffered.length < headerLength) return;
          const version = readKeyVersion(buffered);
          chunkSize = buffered.readUInt32BE(5 + versionLength);
          prefix = Buffer.from(buffered.subarray(9 + versionLength, headerLength));
          key = await resolveKey(version);
          buffered = buffered.subarray(headerLength);
        }
        // A full sealed chunk with more bytes after it is not the last one.
        while (buffered.length > chunkSize + TAG) {
          this.push(open(buffered.subarray(0, chunkSize + TAG), false));
          buffered = buffered.subarray(chunkSize + TAG);
        }
      })().then(
        () => callback(),
        (error: unknown) => callback(error instanceof Error ? error : new DecryptionError('decryption failed')),
      );
    },
    flush(callback: TransformCallback) {
      try {
        if (ended) return callback();
        ended = true;
        if (!key || buffered.length < TAG) throw new DecryptionError('blob is truncated');
        this.push(open(buffered, true));
        callback();
      } catch (error) {
        callback(error instanceof Error ? error : new DecryptionError('decryption failed'));
      }
    },
  });
}
