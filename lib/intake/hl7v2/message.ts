import { Hl7Message, type Hl7Segment } from '@medplum/core';
import iconv from 'iconv-lite';
import { type FieldError, invalidInput, unprocessable } from '../../errors.js';
import { createOrderSchema, type CreateOrderInput } from '../../orders/schemas.js';

/** MSH-18 character sets LabVault reads (HL7 table 0211) and the decoder for each. */
const CHARSETS: Record<string, string> = {
  ASCII: 'ascii',
  '8859/1': 'latin1',
  '8859/15': 'iso-8859-15',
  'UNICODE UTF-8': 'utf8',
  'UNICODE UTF-8 ': 'utf8',
};

/** Who sent a message and under which control id: what a resent message is recognised by. */
export interface MessageHeader {
  sendingApplication: string;
  sendingFacility: string;
  receivingApplication: string;
  receivingFacility: string;
  controlId: string;
  version: string;
  messageCode: string;
  triggerEvent: string;
  /** MSH-18 as sent (the ACK answers in the same character set). */
  charset?: string;
  /** The offset of MSH-7, used for times sent without one. */
  offset?: string;
}

export type OrderControl =
  | { control: 'NW'; order: CreateOrderInput }
  | { control: 'CA'; externalId: string; reason?: string }
  | { control: 'XO'; externalId: string; status: 'in-progress' | 'completed' };

export interface ParsedMessage {
  header: MessageHeader;
  action: OrderControl;
}

/** An HL7 v2 failure: the ACK code it answers with, and the ERR segments' locations (`PID-7`, `SPM[2]-17`). */
export type AckCode = 'AE' | 'AR';

/** Decodes the bytes in the character set MSH-18 names (ASCII-compatible up to MSH-18, so MSH is read as Latin-1 first). */
export function decodeMessage(bytes: Buffer): { text: string; charset?: string } {
  const provisional = bytes.toString('latin1');
  const mshEnd = provisional.search(/[\r\n]/);
  const msh = mshEnd < 0 ? provisional : provisional.slice(0, mshEnd);
  if (!msh.startsWith('MSH') || msh.length < 8)
    throw invalidInput('Not an HL7 v2 message.', [{ path: 'MSH', message: 'the message starts with MSH' }]);
  const separator = msh[3] as string;
  const charset = msh
    .split(separator)[17]
    ?.split(msh[4] as string)[0]
    ?.trim();
  if (!charset) return { text: bytes.toString('utf8') };
  const decoder = CHARSETS[charset.toUpperCase()];
  if (!decoder)
    throw unprocessable(`Character set ${charset} is not supported.`, [
      { path: 'MSH-18', message: 'ASCII, 8859/1, 8859/15 or UNICODE UTF-8' },
    ]);
  return { text: iconv.decode(bytes, decoder), charset };
}

/** HL7 escape sequences of a value (\F\ \S\ \T\ \R\ \E\, \.br\, \Xhh\) to the characters they stand for. */
function unescape(value: string): string {
  return value.replace(/\\(F|S|T|R|E|\.br|X[0-9A-Fa-f]+)\\/g, (_, code: string) => {
    switch (code) {
      case 'F':
        return '|';
      case 'S':
        return '^';
      case 'T':
        return '&';
      case 'R':
        return '~';
      case 'E':
        return '\\';
      case '.br':
        return '\n';
      default:
        return Buffer.from(code.slice(1), 'hex').toString('latin1');
    }
  });
}

/** One component's first subcomponent, unescaped; undefined when empty. */
function value(segment: Hl7Segment | undefined, field: number, component = 1, repetition = 0): string | undefined {
  const raw = segment?.getField(field)?.getComponent(component, 0, repetition);
  if (raw === undefined || raw === '' || raw === '""') return undefined;
  return unescape(raw).trim() || undefined;
}

function repetitions(segment: Hl7Segment | undefined, field: number): number {
  return (segment?.getField(field) as unknown as { components?: unknown[] } | undefined)?.components?.length ?? 0;
}

/** HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]) to an ISO date. */
function isoDate(dtm: string | undefined): string | undefined {
  const m = dtm ? /^(\d{4})(\d{2})(\d{2})/.exec(dtm) : null;
  return m ? `${m[1]}-${m[2]}-${m[3]}` : dtm;
}

/** HL7 DTM to an ISO date-time with offset; a time without offset takes MSH-7's. */
function isoDateTime(dtm: string | undefined, fallbackOffset: string | undefined): string | undefined {
  if (dtm === undefined) return undefined;
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d+)?([+-]\d{4})?$/.exec(dtm);
  if (!m) return dtm; // the order model refuses it, naming the field
  const offset = m[7] ?? fallbackOffset;
  if (!offset) return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6] ?? '00'}`; // refused: no offset known
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6] ?? '00'}${offset.slice(0, 3)}:${offset.slice(3)}`;
}

const SEX: Record<string, CreateOrderInput['patient']['sex']> = {
  F: 'female',
  M: 'male',
  O: 'other',
  U: 'unknown',
  A: 'other',
  N: 'unknown',
  X: 'other',
};
/** Priority of TQ1-9 or the sixth component of OBR-27 (HL7 table 0485). */
const PRIORITY: Record<string, CreateOrderInput['priority']> = {
  S: 'stat',
  A: 'asap',
  R: 'routine',
  T: 'urgent',
  P: 'urgent',
  C: 'urgent',
};
/** XO: the order status ORC-5 asks for (HL7 table 0038). */
const ORDER_STATUS: Record<string, 'in-progress' | 'completed'> = {
  IP: 'in-progress',
  SC: 'in-progress',
  CM: 'completed',
};

const codeOf = (v: string): string =>
  v
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);

function headerOf(msh: Hl7Segment): MessageHeader {
  const ts = value(msh, 7);
  const offset = ts ? /([+-]\d{4})$/.exec(ts)?.[1] : undefined;
  const charset = value(msh, 18);
  return {
    sendingApplication: value(msh, 3) ?? '',
    sendingFacility: value(msh, 4) ?? '',
    receivingApplication: value(msh, 5) ?? '',
    receivingFacility: value(msh, 6) ?? '',
    controlId: value(msh, 10) ?? '',
    version: value(msh, 12) ?? '',
    messageCode: value(msh, 9, 1) ?? '',
    triggerEvent: value(msh, 9, 2) ?? '',
    ...(charset ? { charset } : {}),
    ...(offset ? { offset } : {}),
  };
}

/** The header alone, for an ACK to a message that cannot be read further. */
export function headerOfText(text: string): MessageHeader | undefined {
  try {
    const msh = Hl7Message.parse(text.replace(/\r\n|\n/g, '\r')).getSegment('MSH');
    return msh ? headerOf(msh) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads an OML^O21 (v2.5.1, the IHE LAB-1 subset) or ORM^O01 (v2.3–2.5) with Medplum's Hl7Message
 * and maps it to what LabVault does: ORC-1 NW creates an order, CA cancels it, XO changes its status.
 * One message carries one order (its ORC/OBR groups share one placer number), so it stays atomic.
 */
export function parseOrderMessage(text: string): ParsedMessage {
  const message = Hl7Message.parse(text.replace(/\r\n|\n/g, '\r'));
  const msh = message.getSegment('MSH');
  if (!msh) throw invalidInput('Not an HL7 v2 message.', [{ path: 'MSH', message: 'missing' }]);
  const header = headerOf(msh);
  const errors: FieldError[] = [];
  if (!header.controlId) errors.push({ path: 'MSH-10', message: 'the message control id is required' });
  const kind = `${header.messageCode}^${header.triggerEvent}`;
  if (kind !== 'OML^O21' && kind !== 'ORM^O01')
    throw unprocessable(`${kind} is not an order message LabVault accepts (OML^O21, ORM^O01).`, [
      { path: 'MSH-9', message: 'unsupported message type' },
    ]);
  const supported = kind === 'OML^O21' ? ['2.5', '2.5.1', '2.6'] : ['2.3', '2.3.1', '2.4', '2.5', '2.5.1'];
  if (!supported.includes(header.version))
    throw unprocessable(`Version ${header.version || '(none)'} of ${kind} is not supported.`, [
      { path: 'MSH-12', message: `one of ${supported.join(', ')}` },
    ]);
  if (errors.length > 0) throw invalidInput('The message header is incomplete.', errors);

  const orcs = message.getAllSegments('ORC');
  const obrs = message.getAllSegments('OBR');
  if (orcs.length === 0 || obrs.length === 0)
    throw unprocessable('An order message needs ORC and OBR segments.', [
      { path: orcs.length === 0 ? 'ORC' : 'OBR', message: 'missing' },
    ]);
  const controls = new Set(orcs.map((orc) => value(orc, 1)));
  if (controls.size > 1)
    throw unprocessable('All ORC segments of a message must have the same order control.', [
      { path: 'ORC-1', message: 'mixed' },
    ]);
  const control = value(orcs[0], 1);
  const placers = new Set(
    [...orcs.map((orc) => value(orc, 2)), ...obrs.map((obr) => value(obr, 2))].filter(
      (p): p is string => p !== undefined,
    ),
  );
  if (placers.size !== 1)
    throw unprocessable(
      placers.size === 0
        ? 'The placer order number is required.'
        : 'One message carries one order: one placer order number.',
      [{ path: 'ORC-2', message: placers.size === 0 ? 'required' : `${placers.size} different placer numbers` }],
    );
  const externalId = [...placers][0] as string;

  if (control === 'CA') {
    const reason = value(orcs[0], 16, 2) ?? value(orcs[0], 16, 1);
    return { header, action: { control: 'CA', externalId, ...(reason ? { reason } : {}) } };
  }
  if (control === 'XO') {
    const requested = value(orcs[0], 5);
    const status = requested ? ORDER_STATUS[requested] : undefined;
    if (!status)
      throw unprocessable('XO changes the order status only (ORC-5 IP, SC or CM); other changes are not supported.', [
        { path: 'ORC-5', message: 'IP, SC or CM' },
      ]);
    return { header, action: { control: 'XO', externalId, status } };
  }
  if (control !== 'NW')
    throw unprocessable(`Order control ${control ?? '(none)'} is not supported (NW, CA, XO).`, [
      { path: 'ORC-1', message: 'NW, CA or XO' },
    ]);
  return { header, action: { control: 'NW', order: newOrder(message, header, externalId) } };
}

function newOrder(message: Hl7Message, header: MessageHeader, externalId: string): CreateOrderInput {
  const pid = message.getSegment('PID');
  const orc = message.getSegment('ORC');
  const obrs = message.getAllSegments('OBR');
  const origins = new Map<string, string>([
    ['/externalId', 'ORC-2'],
    ['/patient', 'PID'],
    ['/patient/id', 'PID-3'],
    ['/patient/lastName', 'PID-5'],
    ['/patient/firstName', 'PID-5'],
    ['/patient/birthDate', 'PID-7'],
    ['/patient/sex', 'PID-8'],
    ['/orderingPhysician', 'ORC-12'],
    ['/orderingPhysician/name', 'ORC-12'],
    ['/orderingPhysician/lanr', 'ORC-12'],
    ['/orderingPhysician/bsnr', 'ORC-21'],
    ['/priority', 'TQ1-9'],
    ['/clinicalInformation', 'OBR-13'],
    ['/specimens', 'SPM'],
  ]);

  // PID-3: the identifier of type MR or PI, else the first.
  let patientId: string | undefined;
  for (let r = 0; r < repetitions(pid, 3); r++) {
    const type = value(pid, 3, 5, r);
    if (type === 'MR' || type === 'PI') {
      patientId = value(pid, 3, 1, r);
      break;
    }
  }
  patientId ??= value(pid, 3, 1);
  const given = [value(pid, 5, 2), value(pid, 5, 3)].filter(Boolean).join(' ');
  const sex = value(pid, 8);
  const patient = {
    ...(patientId ? { id: patientId } : {}),
    ...(value(pid, 5, 1) ? { lastName: value(pid, 5, 1) } : {}),
    ...(given ? { firstName: given } : {}),
    ...(value(pid, 7) ? { birthDate: isoDate(value(pid, 7)) } : {}),
    ...(sex ? { sex: SEX[sex.toUpperCase()] ?? sex } : {}),
  };

  // The ordering provider: ORC-12, else OBR-16 (XCN: id, family, given, …, prefix); the id is the LANR when nine digits.
  const providerSegment = value(orc, 12, 2) ? orc : obrs[0];
  const providerField = providerSegment === orc ? 12 : 16;
  if (providerField === 16) origins.set('/orderingPhysician/name', 'OBR-16').set('/orderingPhysician/lanr', 'OBR-16');
  const providerId = value(providerSegment, providerField, 1);
  const name = [
    value(providerSegment, providerField, 6),
    value(providerSegment, providerField, 3),
    value(providerSegment, providerField, 2),
  ]
    .filter(Boolean)
    .join(' ');
  // The practice: ORC-21 (XON), its organization identifier (component 10) or id number (component 3).
  const bsnr = value(orc, 21, 10) ?? value(orc, 21, 3);
  const physician = {
    ...(name ? { name } : {}),
    ...(providerId && /^\d{9}$/.test(providerId) ? { lanr: providerId } : {}),
    ...(bsnr ? { bsnr } : {}),
  };

  // Priority: TQ1-9, else OBR-27's sixth component (ORM, v2.3–2.5).
  const tq1 = message.getSegment('TQ1');
  const priorityCode = value(tq1, 9) ?? value(obrs[0], 27, 6);
  if (!value(tq1, 9)) origins.set('/priority', 'OBR-27');
  const priority = priorityCode ? (PRIORITY[priorityCode.toUpperCase()] ?? priorityCode) : 'routine';

  // Examinations: OBR-4 of each OBR; clinical information: OBR-13 and the NTE comments.
  const examinations: string[] = [];
  obrs.forEach((obr, i) => {
    const code = value(obr, 4, 1) ?? value(obr, 4, 2);
    origins.set(`/examinations/${examinations.length}`, obrs.length > 1 ? `OBR[${i + 1}]-4` : 'OBR-4');
    examinations.push(code ? codeOf(code) : '');
  });
  const notes: string[] = [];
  for (const obr of obrs) {
    const info = value(obr, 13);
    if (info && !notes.includes(info)) notes.push(info);
  }
  for (const nte of message.getAllSegments('NTE')) {
    const comment = value(nte, 3);
    if (comment && !notes.includes(comment)) notes.push(comment);
  }

  // Specimens: SPM segments (OML), else one per OBR from OBR-15 and OBR-7 (ORM).
  const specimens: Record<string, string>[] = [];
  const spms = message.getAllSegments('SPM');
  if (spms.length > 0) {
    spms.forEach((spm, i) => {
      const at = (field: number) => (spms.length > 1 ? `SPM[${i + 1}]-${field}` : `SPM-${field}`);
      const k = specimens.length;
      const id = value(spm, 2, 1) ?? value(spm, 2, 2);
      const type = value(spm, 4, 1) ?? value(spm, 4, 2);
      const site = value(spm, 8, 2) ?? value(spm, 8, 1);
      const additive = value(spm, 6, 1) ?? value(spm, 6, 2);
      const collected = isoDateTime(value(spm, 17, 1), header.offset);
      specimens.push({
        ...(id ? { id } : {}),
        ...(type ? { type: codeOf(type) } : {}),
        ...(site ? { bodySite: site } : {}),
        ...(collected ? { collectedAt: collected } : {}),
        ...(additive ? { fixative: codeOf(additive) } : {}),
      });
      origins.set(`/specimens/${k}`, `SPM${spms.length > 1 ? `[${i + 1}]` : ''}`);
      origins.set(`/specimens/${k}/id`, at(2));
      origins.set(`/specimens/${k}/type`, at(4));
      origins.set(`/specimens/${k}/fixative`, at(6));
      origins.set(`/specimens/${k}/bodySite`, at(8));
      origins.set(`/specimens/${k}/collectedAt`, at(17));
    });
  } else {
    obrs.forEach((obr, i) => {
      const at = (field: number) => (obrs.length > 1 ? `OBR[${i + 1}]-${field}` : `OBR-${field}`);
      const k = specimens.length;
      // OBR-15 (SPS): specimen source (code or text), component 4 the body site.
      const source = value(obr, 15, 1) ?? value(obr, 15, 2);
      const site = value(obr, 15, 4);
      const collected = isoDateTime(value(obr, 7), header.offset);
      if (!source && !collected) return;
      specimens.push({
        id: `${value(obr, 1) ?? String(i + 1)}`,
        ...(source ? { type: codeOf(source) } : {}),
        ...(site ? { bodySite: site } : {}),
        ...(collected ? { collectedAt: collected } : {}),
      });
      origins.set(`/specimens/${k}`, `OBR${obrs.length > 1 ? `[${i + 1}]` : ''}-15`);
      origins.set(`/specimens/${k}/id`, at(1));
      origins.set(`/specimens/${k}/type`, at(15));
      origins.set(`/specimens/${k}/bodySite`, at(15));
      origins.set(`/specimens/${k}/collectedAt`, at(7));
    });
    origins.set('/specimens', 'OBR-15');
  }

  const candidate = {
    externalId,
    patient,
    orderingPhysician: physician,
    priority,
    ...(notes.length > 0 ? { clinicalInformation: notes.join('\n') } : {}),
    specimens,
    examinations,
  };
  const parsed = createOrderSchema.safeParse(candidate);
  if (!parsed.success)
    throw unprocessable(
      'The message does not meet the rules of a lab order.',
      parsed.error.issues.map((issue) => {
        const missing = issue.code === 'invalid_type' && /received undefined/.test(issue.message);
        return { path: originOf(origins, issue.path), message: missing ? 'is required' : issue.message };
      }),
    );
  return parsed.data;
}

function originOf(origins: Map<string, string>, path: readonly PropertyKey[]): string {
  for (let n = path.length; n > 0; n--) {
    const origin = origins.get('/' + path.slice(0, n).map(String).join('/'));
    if (origin) return origin;
  }
  return 'MSH';
}
