import iconv from 'iconv-lite';
import { type FieldError, invalidInput, unprocessable, unsupportedMediaType } from '../../errors.js';

// A reader of KBV's LDT 3 written here: no maintained npm package parses LDT (the one library we
// know, libldt3, is Java). It reads the line grammar and the record/object nesting; what the
// records mean is mapped in ./order.ts.

/** One line `LLL FFFF content CRLF`: the field id and its content, with its line number for errors. */
export interface LdtField {
  line: number;
  id: string;
  content: string;
  /** The object this field introduces (an attribute such as 8219 → Obj_0054 Timestamp). */
  object?: LdtObject;
}

/** `8002 Obj_NNNN` … `8003 Obj_NNNN` */
export interface LdtObject {
  line: number;
  name: string;
  fields: LdtField[];
}

/** `8000 <Satzart>` … `8001 <Satzart>` */
export interface LdtRecord {
  line: number;
  type: string;
  fields: LdtField[];
}

const CHARSETS: Record<string, string> = {
  'iso-8859-15': 'iso-8859-15',
  'iso-8859-1': 'latin1',
  'utf-8': 'utf8',
  'windows-1252': 'win1252',
};

const where = (line: number, id?: string) => (id ? `line ${line}, field ${id}` : `line ${line}`);

/**
 * Splits the bytes into records of nested objects. Each line's length (its first three digits) is
 * checked against the line's bytes including CR LF, in the file's own character set (ISO 8859-15
 * unless the request says otherwise). LDT 2.x files (8100 record lengths, 9212 version lines) are refused.
 */
export function parseLdt(bytes: Buffer, charset = 'iso-8859-15'): LdtRecord[] {
  const encoding = CHARSETS[charset.toLowerCase()];
  if (!encoding)
    throw unsupportedMediaType(`LDT in ${charset} is not read; send ISO-8859-15, ISO-8859-1, windows-1252 or UTF-8.`);
  const records: LdtRecord[] = [];
  const errors: FieldError[] = [];
  let record: LdtRecord | undefined;
  const objects: LdtObject[] = [];
  let lastField: LdtField | undefined;
  let start = 0;
  let lineNo = 0;
  while (start < bytes.length) {
    lineNo++;
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length - 1;
    const raw = bytes.subarray(start, end + 1);
    start = end + 1;
    if (raw.length === 1 && raw[0] === 0x0a) continue;
    if (raw.at(-1) !== 0x0a || raw.at(-2) !== 0x0d) {
      errors.push({ path: where(lineNo), message: 'a line ends with CR LF' });
      break;
    }
    const text = iconv.decode(raw.subarray(0, raw.length - 2), encoding);
    const m = /^(\d{3})(\d{4})(.*)$/s.exec(text);
    if (!m) {
      errors.push({
        path: where(lineNo),
        message: 'a line is LLL FFFF content: three digits of length, four of field id',
      });
      break;
    }
    const [, length, id, content] = m as unknown as [string, string, string, string];
    if (Number(length) !== raw.length) {
      errors.push({
        path: where(lineNo, id),
        message: `the line is ${raw.length} bytes long, its length says ${Number(length)}`,
      });
      break;
    }
    if (id === '9212' || id === '8100') {
      errors.push({
        path: where(lineNo, id),
        message: 'LDT 2.x (record lengths and version lines) is not accepted; send LDT 3',
      });
      break;
    }
    if (/[\p{Cc}]/u.test(content)) {
      errors.push({ path: where(lineNo, id), message: 'control characters are not allowed in content' });
      break;
    }
    if (id === '8000') {
      if (record) {
        errors.push({
          path: where(lineNo, id),
          message: `record ${record.type} of line ${record.line} is not closed (8001)`,
        });
        break;
      }
      record = { line: lineNo, type: content, fields: [] };
      lastField = undefined;
      continue;
    }
    if (!record) {
      errors.push({ path: where(lineNo, id), message: 'a field outside a record (8000 … 8001)' });
      break;
    }
    if (id === '8001') {
      if (objects.length > 0) {
        errors.push({ path: where(lineNo, id), message: `object ${objects.at(-1)?.name} is not closed (8003)` });
        break;
      }
      if (content !== record.type) {
        errors.push({ path: where(lineNo, id), message: `closes record ${content}, but ${record.type} is open` });
        break;
      }
      records.push(record);
      record = undefined;
      continue;
    }
    if (id === '8002') {
      if (!/^Obj_\d{4}$/.test(content)) {
        errors.push({ path: where(lineNo, id), message: 'an object is named Obj_NNNN' });
        break;
      }
      const object: LdtObject = { line: lineNo, name: content, fields: [] };
      // An object right after an attribute field belongs to it; else it stands in its container.
      if (lastField && !lastField.object) lastField.object = object;
      else (objects.at(-1)?.fields ?? record.fields).push({ line: lineNo, id: '8002', content, object });
      objects.push(object);
      lastField = undefined;
      continue;
    }
    if (id === '8003') {
      if (objects.at(-1)?.name !== content) {
        errors.push({
          path: where(lineNo, id),
          message: `closes ${content}, but ${objects.at(-1)?.name ?? 'no object'} is open`,
        });
        break;
      }
      objects.pop();
      lastField = undefined;
      continue;
    }
    const field: LdtField = { line: lineNo, id, content };
    (objects.at(-1)?.fields ?? record.fields).push(field);
    lastField = field;
  }
  if (errors.length === 0 && record)
    errors.push({ path: where(record.line, '8000'), message: `record ${record.type} is not closed (8001)` });
  if (errors.length > 0) throw invalidInput('The LDT file cannot be read.', errors);
  if (records.length === 0)
    throw unprocessable('The file holds no LDT record.', [{ path: where(1), message: 'no 8000 record' }]);
  return records;
}

/** Every field of a container and the objects below it, depth first, in file order. */
export function* walk(fields: readonly LdtField[]): Generator<LdtField> {
  for (const field of fields) {
    yield field;
    if (field.object) yield* walk(field.object.fields);
  }
}

/** The objects named `name` below these fields, in file order. */
export function objectsNamed(fields: readonly LdtField[], name: string): LdtObject[] {
  return [...walk(fields)].flatMap((f) => (f.object?.name === name ? [f.object] : []));
}

export const fieldWhere = where;
