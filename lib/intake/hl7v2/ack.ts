import iconv from 'iconv-lite';
import type { FieldError } from '../../errors.js';
import type { MessageHeader } from './message.js';

export type AckCode = 'AA' | 'AE' | 'AR';

/** HL7 table 0357 codes for what went wrong. */
function errorCode(kind: string, error: FieldError | undefined): string {
  if (error?.path === 'MSH-9') return '200^Unsupported message type^HL70357';
  if (error?.path === 'MSH-12') return '203^Unsupported version id^HL70357';
  if (error?.path === 'MSH-18') return '102^Data type error^HL70357';
  if (error?.path === 'ORC-1' || error?.path === 'ORC-5') return '201^Unsupported event code^HL70357';
  if (kind === 'not-found') return '204^Unknown key identifier^HL70357';
  if (kind === 'conflict') return '205^Duplicate key identifier^HL70357';
  if (error && /required/.test(error.message)) return '101^Required field missing^HL70357';
  if (error) return '102^Data type error^HL70357';
  return '207^Application internal error^HL70357';
}

const escape = (text: string): string =>
  text
    .replace(/\\/g, '\\E\\')
    .replace(/\|/g, '\\F\\')
    .replace(/\^/g, '\\S\\')
    .replace(/&/g, '\\T\\')
    .replace(/~/g, '\\R\\')
    .replace(/[\r\n]+/g, ' ');

/** `PID-7` → `PID^1^7`, `SPM[2]-17` → `SPM^2^17` (ERR-2, an ERL). */
function locationOf(path: string): string {
  const m = /^([A-Z0-9]{3})(?:\[(\d+)\])?(?:-(\d+))?$/.exec(path);
  return m ? [m[1], m[2] ?? '1', m[3] ?? ''].join('^').replace(/\^$/, '') : '';
}

/** `20261130142501+0000` for an ISO time. */
const hl7Time = (iso: string): string =>
  iso
    .replace(/[-:T]/g, '')
    .replace(/\.\d+Z$|Z$/, '')
    .slice(0, 14) + '+0000';

/**
 * The acknowledgment (original mode) of a message: MSA-2 is the message's MSH-10. Built from the
 * message and the outcome alone, at the time given, so the same message and outcome give the same ACK.
 */
export function buildAck(
  header: MessageHeader | undefined,
  outcome: { code: AckCode; kind?: string; text: string; errors?: readonly FieldError[] },
  at: string,
): string {
  const h: MessageHeader = header ?? {
    sendingApplication: '',
    sendingFacility: '',
    receivingApplication: '',
    receivingFacility: '',
    controlId: '',
    version: '2.5.1',
    messageCode: '',
    triggerEvent: '',
  };
  const segments = [
    [
      'MSH',
      '^~\\&',
      h.receivingApplication || 'LABVAULT',
      h.receivingFacility,
      h.sendingApplication,
      h.sendingFacility,
      hl7Time(at),
      '',
      `ACK^${h.triggerEvent}^ACK`,
      `ACK-${h.controlId}`.slice(0, 199),
      'P',
      h.version || '2.5.1',
      '',
      '',
      '',
      '',
      '',
      h.charset ?? '',
    ].join('|'),
    ['MSA', outcome.code, h.controlId, escape(outcome.text).slice(0, 80)].join('|'),
  ];
  const errors = outcome.code === 'AA' ? [] : outcome.errors?.length ? outcome.errors : [undefined];
  for (const error of errors)
    segments.push(
      [
        'ERR',
        '',
        error ? locationOf(error.path) : '',
        errorCode(outcome.kind ?? '', error),
        'E',
        '',
        '',
        '',
        escape(error ? `${error.path}: ${error.message}` : outcome.text),
      ].join('|'),
    );
  return segments.join('\r') + '\r';
}

/** MSH-18 → the IANA name of the character set (what Content-Type states). */
const IANA: Record<string, string> = { '8859/1': 'iso-8859-1', '8859/15': 'iso-8859-15', ASCII: 'us-ascii' };

/** The ACK as bytes in the message's own character set, and that set's IANA name. */
export function encodeAck(ack: string, header: MessageHeader | undefined): { bytes: Buffer; charset: string } {
  const charset = IANA[header?.charset?.toUpperCase() ?? ''] ?? 'utf-8';
  return { bytes: iconv.encode(ack, charset), charset };
}
