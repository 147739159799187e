import { type FieldError, unprocessable } from '../../errors.js';
import { createOrderSchema, type CreateOrderInput } from '../../orders/schemas.js';
import { fieldWhere, type LdtField, type LdtObject, type LdtRecord, objectsNamed, walk } from './parser.js';

/** LDT 3 Satzarten and objects LabVault reads. */
const PACKET_HEADER = '8230';
const PACKET_END = '8231';
const ORDER = '8215';
const OBJ_PATIENT = 'Obj_0045';
const OBJ_PERSON = 'Obj_0047';
const OBJ_MATERIAL = 'Obj_0037';

export interface LdtOrder {
  order: CreateOrderInput;
  /** Where the order record starts (`line 12`), for answers. */
  at: string;
}

const first = (fields: readonly LdtField[], id: string): LdtField | undefined =>
  [...walk(fields)].find((f) => f.id === id);
const all = (fields: readonly LdtField[], id: string): LdtField[] => [...walk(fields)].filter((f) => f.id === id);

const codeOf = (v: string): string =>
  v
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/ß/g, 'ss')
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);

/** 3110: M, W, D (divers), X (unbestimmt), U (unbekannt). */
const SEX: Record<string, CreateOrderInput['patient']['sex']> = {
  M: 'male',
  W: 'female',
  D: 'other',
  X: 'other',
  U: 'unknown',
};
/** 8501 Dringlichkeit: 1 Notfall, 2 eilig. */
const PRIORITY: Record<string, CreateOrderInput['priority']> = { '1': 'stat', '2': 'urgent' };

/** JJJJMMTT → YYYY-MM-DD */
const isoDate = (v: string | undefined): string | undefined =>
  v && /^\d{8}$/.test(v) ? `${v.slice(0, 4)}-${v.slice(4, 6)}-${v.slice(6, 8)}` : v;

/** The UTC offset of Europe/Berlin at a wall-clock time there (LDT's senders are German practices). */
function berlinOffset(date: string, time: string): string {
  const guess = new Date(`${date}T${time}Z`);
  const parts = new Intl.DateTimeFormat('en', { timeZone: 'Europe/Berlin', timeZoneName: 'longOffset' }).formatToParts(
    guess,
  );
  const name = parts.find((p) => p.type === 'timeZoneName')?.value ?? 'GMT+01:00';
  return name === 'GMT' ? '+00:00' : name.replace('GMT', '');
}

/** Obj_0054 Timestamp: 7278 JJJJMMTT, 7279 HHMMSS[mmm], 7273 the zone (`UTC+1`, `+01:00`); Berlin time without one. */
function timestampOf(object: LdtObject | undefined): string | undefined {
  if (!object) return undefined;
  const date = isoDate(first(object.fields, '7278')?.content);
  const time = first(object.fields, '7279')?.content;
  if (!date || !/^\d{4}-\d{2}-\d{2}$/.test(date)) return date;
  const clock =
    time && /^\d{6}/.test(time) ? `${time.slice(0, 2)}:${time.slice(2, 4)}:${time.slice(4, 6)}` : '00:00:00';
  const zone = /([+-])(\d{1,2})(?::?(\d{2}))?$/.exec(first(object.fields, '7273')?.content ?? '');
  const offset = zone ? `${zone[1]}${(zone[2] ?? '0').padStart(2, '0')}:${zone[3] ?? '00'}` : berlinOffset(date, clock);
  return `${date}T${clock}${offset}`;
}

function personOf(object: LdtObject | undefined): {
  given?: string;
  family?: string;
  title?: string;
  birthDate?: string;
  sex?: string;
} {
  if (!object) return {};
  const given = all(object.fields, '3102')
    .map((f) => f.content)
    .join(' ');
  const prefix = [first(object.fields, '3100')?.content, first(object.fields, '3120')?.content]
    .filter(Boolean)
    .join(' ');
  const family = first(object.fields, '3101')?.content;
  return {
    ...(given ? { given } : {}),
    ...(family ? { family: prefix ? `${prefix} ${family}` : family } : {}),
    ...(first(object.fields, '3104') ? { title: first(object.fields, '3104')?.content } : {}),
    ...(first(object.fields, '3103') ? { birthDate: isoDate(first(object.fields, '3103')?.content) } : {}),
    ...(first(object.fields, '3110') ? { sex: first(object.fields, '3110')?.content } : {}),
  };
}

/**
 * The orders of an LDT 3 practice packet (8230 … 8215 … 8231). Every order record is mapped (and
 * checked against the order model) before anything is stored; each problem names its line and field.
 */
export function ordersOfLdt(records: readonly LdtRecord[]): LdtOrder[] {
  const errors: FieldError[] = [];
  if (records[0]?.type !== PACKET_HEADER)
    errors.push({
      path: fieldWhere(records[0]?.line ?? 1, '8000'),
      message: 'a practice packet starts with record 8230',
    });
  if (records.at(-1)?.type !== PACKET_END)
    errors.push({
      path: fieldWhere(records.at(-1)?.line ?? 1, '8000'),
      message: 'a practice packet ends with record 8231',
    });
  const orderRecords = records.filter((r) => r.type === ORDER);
  for (const r of records)
    if (![PACKET_HEADER, PACKET_END, ORDER].includes(r.type))
      errors.push({ path: fieldWhere(r.line, '8000'), message: `record type ${r.type} is not an order (8215)` });
  if (orderRecords.length === 0)
    errors.push({ path: fieldWhere(records[0]?.line ?? 1, '8000'), message: 'no order record (8215)' });
  if (errors.length > 0) throw unprocessable('The file is not an LDT 3 practice packet of orders.', errors);

  const orders: LdtOrder[] = [];
  for (const record of orderRecords) {
    const origins = new Map<string, string>();
    const locate = (key: string, field: LdtField | undefined, fallbackId: string) =>
      origins.set(
        key,
        field ? fieldWhere(field.line, field.id) : `${fieldWhere(record.line, '8000')} (field ${fallbackId} missing)`,
      );
    const orderNumber = first(record.fields, '8310');
    locate('/externalId', orderNumber, '8310');

    const patientObject = objectsNamed(record.fields, OBJ_PATIENT)[0];
    const patientId = patientObject ? first(patientObject.fields, '3000') : undefined;
    const personObject = patientObject ? objectsNamed(patientObject.fields, OBJ_PERSON)[0] : undefined;
    const person = personOf(personObject);
    locate('/patient', personObject ? { line: personObject.line, id: '8002', content: '' } : undefined, OBJ_PERSON);
    locate('/patient/id', patientId, '3000');
    for (const [key, id] of [
      ['firstName', '3102'],
      ['lastName', '3101'],
      ['birthDate', '3103'],
      ['sex', '3110'],
    ] as const)
      locate(`/patient/${key}`, personObject ? first(personObject.fields, id) : undefined, id);

    // 8122: the sender (Einsenderidentifikation): LANR 0212, BSNR 0201, the physician as a Person.
    const sender = first(record.fields, '8122');
    const senderFields = sender?.object ? [sender, ...walk(sender.object.fields)] : [];
    const lanr = first(senderFields, '0212');
    const bsnr = first(senderFields, '0201');
    const physician = personOf(sender?.object ? objectsNamed(sender.object.fields, OBJ_PERSON)[0] : undefined);
    const physicianName = [physician.title, physician.given, physician.family].filter(Boolean).join(' ');
    locate('/orderingPhysician', sender, '8122');
    locate('/orderingPhysician/name', sender, '8122');
    locate('/orderingPhysician/lanr', lanr, '0212');
    locate('/orderingPhysician/bsnr', bsnr, '0201');

    const urgency = first(record.fields, '8501');
    locate('/priority', urgency, '8501');

    // 8159: each requested examination (its object's 7260 test id or 8411 name, else the field's content).
    const examinations: string[] = [];
    for (const request of all(record.fields, '8159')) {
      const inner = request.object
        ? (first(request.object.fields, '7260') ?? first(request.object.fields, '8411'))
        : undefined;
      const source = inner ?? request;
      locate(`/examinations/${examinations.length}`, source, '8159');
      examinations.push(codeOf(source.content));
    }
    if (examinations.length === 0) locate('/examinations', undefined, '8159');

    const notes = [...all(record.fields, '4207'), ...all(record.fields, '3564')].map((f) => f.content).filter(Boolean);
    const note = all(record.fields, '4207')[0] ?? all(record.fields, '3564')[0];
    locate('/clinicalInformation', note, '4207');

    // Obj_0037 Material: 8428 (else 7364 container) id, 8430 name as the type, 7292 site, 8219 collection time.
    const specimens: Record<string, string>[] = [];
    for (const material of objectsNamed(record.fields, OBJ_MATERIAL)) {
      const k = specimens.length;
      const id = first(material.fields, '8428') ?? first(material.fields, '7364');
      const name = first(material.fields, '8430');
      const site = first(material.fields, '7292');
      const collectedField = material.fields.find((f) => f.id === '8219');
      const collected = timestampOf(collectedField?.object);
      specimens.push({
        ...(id ? { id: id.content } : {}),
        ...(name ? { type: codeOf(name.content) } : {}),
        ...(site ? { bodySite: site.content } : {}),
        ...(collected ? { collectedAt: collected } : {}),
      });
      const materialStart = { line: material.line, id: '8002', content: '' };
      locate(`/specimens/${k}`, materialStart, '8002');
      locate(`/specimens/${k}/id`, id, '8428');
      locate(`/specimens/${k}/type`, name, '8430');
      locate(`/specimens/${k}/bodySite`, site, '7292');
      locate(`/specimens/${k}/collectedAt`, collectedField, '8219');
    }
    if (specimens.length === 0) locate('/specimens', undefined, `8002 ${OBJ_MATERIAL}`);

    const candidate = {
      ...(orderNumber ? { externalId: orderNumber.content } : {}),
      patient: {
        ...(patientId ? { id: patientId.content } : {}),
        ...(person.given ? { firstName: person.given } : {}),
        ...(person.family ? { lastName: person.family } : {}),
        ...(person.birthDate ? { birthDate: person.birthDate } : {}),
        ...(person.sex ? { sex: SEX[person.sex] ?? person.sex } : {}),
      },
      orderingPhysician: {
        ...(physicianName ? { name: physicianName } : {}),
        ...(lanr ? { lanr: lanr.content } : {}),
        ...(bsnr ? { bsnr: bsnr.content } : {}),
      },
      priority: urgency ? (PRIORITY[urgency.content] ?? 'routine') : 'routine',
      ...(notes.length > 0 ? { clinicalInformation: notes.join('\n') } : {}),
      specimens,
      examinations,
    };
    const parsed = createOrderSchema.safeParse(candidate);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        let path = fieldWhere(record.line, '8000');
        for (let n = issue.path.length; n > 0; n--) {
          const origin = origins.get('/' + issue.path.slice(0, n).map(String).join('/'));
          if (origin) {
            path = origin;
            break;
          }
        }
        const missing = issue.code === 'invalid_type' && /received undefined/.test(issue.message);
        errors.push({ path, message: missing ? 'is required' : issue.message });
      }
      continue;
    }
    orders.push({ order: parsed.data, at: fieldWhere(record.line) });
  }
  if (errors.length > 0) throw unprocessable('An order of the file does not meet the rules of a lab order.', errors);
  return orders;
}
