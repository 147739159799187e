// HL7 v2 intake over HTTP against a local host: the golden OML^O21 (UTF-8) and ORM^O01 (ISO 8859-1)
// of docs/examples each create their order, a resent message stores nothing and gets the same ACK,
// CA cancels, XO changes the status, and broken messages get AE/AR ACKs naming the field.
import { readFileSync } from 'node:fs';
import { Hl7Message } from '@medplum/core';
import iconv from 'iconv-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, type RunningHost, startHost } from '../support/local-host.js';

let host: RunningHost;
let key: string;
let createOnlyKey: string;
const TENANT = 'lab-hl7';
const OML = readFileSync('docs/examples/order.oml-o21.hl7', 'utf8');
const ORM = readFileSync('docs/examples/order.orm-o01.hl7');

interface Ack {
  status: number;
  contentType: string;
  text: string;
  message: Hl7Message;
  /** MSA-1 */
  code: string;
  /** MSA-2 */
  controlId: string;
  /** ERR-2 of each ERR segment (SEG^seq^field) */
  locations: string[];
}

async function post(body: string | Buffer, init: { key?: string | null; contentType?: string } = {}): Promise<Ack> {
  const response = await fetch(`${host.apiBaseUrl}/hl7v2`, {
    method: 'POST',
    headers: {
      'content-type': init.contentType ?? 'x-application/hl7-v2+er7',
      ...(init.key === null ? {} : { authorization: `ApiKey ${init.key ?? key}` }),
    },
    body,
  });
  const contentType = response.headers.get('content-type') ?? '';
  const charset = /charset=([^;]+)/.exec(contentType)?.[1] ?? 'utf-8';
  const text = iconv.decode(Buffer.from(await response.arrayBuffer()), charset);
  const message = Hl7Message.parse(text);
  return {
    status: response.status,
    contentType,
    text,
    message,
    code: message.getSegment('MSA')?.getField(1)?.toString() ?? '',
    controlId: message.getSegment('MSA')?.getField(2)?.toString() ?? '',
    locations: message.getAllSegments('ERR').map((s) => s.getField(2)?.toString() ?? ''),
  };
}

async function orderByPlacer(placer: string): Promise<Record<string, unknown> | undefined> {
  const response = await fetch(`${host.apiBaseUrl}/orders?externalId=${encodeURIComponent(placer)}`, {
    headers: { authorization: `ApiKey ${key}` },
  });
  return ((await response.json()) as { items: Record<string, unknown>[] }).items[0];
}

/** The golden OML with other placer and control ids, and a change applied to one segment. */
function variant(change: (segments: string[]) => void = () => undefined): string {
  const id = Math.random().toString(36).slice(2, 10);
  const segments = OML.trim()
    .split('\n')
    .map((s) => s.replaceAll('KHN-2026-004712', `KHN-${id}`).replace('KHN-MSG-000815', `MSG-${id}`));
  change(segments);
  return segments.join('\r') + '\r';
}

beforeAll(async () => {
  host = await startHost();
  admin(host.dataDir, ['tenant', 'create', '--id', TENANT, '--name', 'Lab HL7']);
  const create = (name: string, permissions: string) =>
    String(
      admin(host.dataDir, ['integration', 'create', '--tenant', TENANT, '--name', name, '--permissions', permissions])
        .json?.apiKey,
    );
  key = create('lis', 'orders:create,orders:read,orders:update');
  createOnlyKey = create('his', 'orders:create');
});
afterAll(async () => {
  await host?.kill();
});

describe('HL7 v2 intake', () => {
  let firstAck: Ack;

  it('creates the order of the golden OML^O21 and answers AA with MSA-2 = MSH-10', async () => {
    firstAck = await post(OML);
    expect(firstAck.status, firstAck.text).toBe(200);
    expect(firstAck.contentType).toMatch(/^x-application\/hl7-v2\+er7; charset=utf-8/);
    expect(firstAck.code).toBe('AA');
    expect(firstAck.controlId).toBe('KHN-MSG-000815');
    const msh = firstAck.message.getSegment('MSH');
    expect(msh?.getField(9)?.toString()).toBe('ACK^O21^ACK');
    expect(msh?.getField(5)?.toString()).toBe('ORBIS'); // back to the sender
    const order = await orderByPlacer('KHN-2026-004712');
    expect(order).toMatchObject({
      patient: {
        id: 'P-0081543',
        firstName: 'Zoë Anneliese',
        lastName: 'Weiß',
        birthDate: '1979-03-15',
        sex: 'female',
      },
      orderingPhysician: { name: 'Dr. med. Bärbel Schäfer', lanr: '838382201', bsnr: '021234567' },
      priority: 'asap',
      examinations: ['hist', 'ihc-cmv'],
      specimens: [
        {
          id: 'S-4712-A',
          type: 'bx',
          bodySite: 'Terminales Ileum',
          collectedAt: '2026-11-30T09:40:00+01:00',
          fixative: 'form',
        },
        {
          id: 'S-4712-B',
          type: 'bx',
          bodySite: 'Colon ascendens',
          collectedAt: '2026-11-30T09:45:00+01:00',
          fixative: 'form',
        },
      ],
    });
    // Escapes and the euro sign survive.
    expect(order?.clinicalInformation).toBe(
      'V. a. Morbus Crohn, Ileum & Colon\nVorbefund 2025: unauffällig; Kosten 12,50 €',
    );
  });

  it('answers a resent message with the same ACK and stores nothing new', async () => {
    const again = await post(OML);
    expect(again.text).toBe(firstAck.text);
    const response = await fetch(`${host.apiBaseUrl}/orders/search`, {
      method: 'POST',
      headers: { authorization: `ApiKey ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ patientId: 'P-0081543' }),
    });
    expect(((await response.json()) as { items: unknown[] }).items).toHaveLength(1);
    // The same control id from the same sender with other content: AE, duplicate key, nothing stored.
    const reused = await post(OML.replace('V. a. Morbus Crohn', 'Anderer Text'));
    expect(reused.status).toBe(409);
    expect(reused.code).toBe('AE');
    expect(reused.text).toContain('205^Duplicate key identifier');
  });

  it('creates the order of the golden ORM^O01 sent in ISO 8859-1, and answers in that character set', async () => {
    const ack = await post(ORM);
    expect(ack.status, ack.text).toBe(200);
    expect(ack.contentType).toContain('charset=iso-8859-1');
    expect(ack.code).toBe('AA');
    expect(ack.controlId).toBe('MS-20261130-0042');
    expect(await orderByPlacer('PS-2026-0042')).toMatchObject({
      patient: { id: '0042-MED', firstName: 'Jörg', lastName: 'Brückner', sex: 'male', birthDate: '1961-07-04' },
      orderingPhysician: { name: 'Dr. Gül Özdemir', lanr: '123456601', bsnr: '031234500' },
      priority: 'routine',
      clinicalInformation: 'Pigmentierter Nävus, Rücken links',
      specimens: [
        { id: '1', type: 'bx', bodySite: 'Rücken links', collectedAt: '2026-11-30T10:45:00+01:00' },
        { id: '2', type: 'bx', bodySite: 'Rücken rechts', collectedAt: '2026-11-30T10:50:00+01:00' },
      ],
    });
  });

  it('XO changes the status, CA cancels with the reason; without orders:update both are refused', async () => {
    const control = (code: string, extra: string) =>
      [
        `MSH|^~\\&|ORBIS|KH-NORD|LABVAULT|PATHO-WEST|20261130120000+0100||OML^O21^OML_O21|CTL-${code}-${Math.random().toString(36).slice(2)}|P|2.5.1`,
        'PID|1||P-0081543^^^KHN^MR||Weiß^Zoë||19790315|F',
        `ORC|${code}|KHN-2026-004712${extra}`,
        'OBR|1|KHN-2026-004712||HIST^Histologie^L',
      ].join('\r');
    const forbidden = await post(control('CA', ''), { key: createOnlyKey });
    expect([forbidden.status, forbidden.code]).toEqual([403, 'AR']);
    expect((await orderByPlacer('KHN-2026-004712'))?.status).toBe('received');
    const xo = await post(control('XO', '|||IP'));
    expect([xo.status, xo.code], xo.text).toEqual([200, 'AA']);
    expect((await orderByPlacer('KHN-2026-004712'))?.status).toBe('in-progress');
    const ca = await post(control('CA', '||||||||||||||^Patient verstorben'));
    expect([ca.status, ca.code], ca.text).toEqual([200, 'AA']);
    expect(await orderByPlacer('KHN-2026-004712')).toMatchObject({
      status: 'cancelled',
      cancellationReason: 'Patient verstorben',
    });
    const unknown = await post(control('CA', '').replaceAll('KHN-2026-004712', 'KHN-NOPE'));
    expect([unknown.status, unknown.code, unknown.locations]).toEqual([404, 'AE', ['ORC^1^2']]);
  });

  it('refuses broken messages with AE or AR naming the field, and stores nothing', async () => {
    const cases: [string, string, number, string, string[]][] = [
      ['birth date missing', variant((s) => (s[1] = 'PID|1||P-9^^^KHN^MR||Weiß^Zoë|||F')), 422, 'AE', ['PID^1^7']],
      [
        'second specimen without collection time',
        variant((s) => (s[8] = (s[8] as string).replace(/\|20261130094500\+0100$/, '|'))),
        422,
        'AE',
        ['SPM^2^17'],
      ],
      [
        'future birth date',
        variant((s) => (s[1] = 'PID|1||P-9^^^KHN^MR||Weiß^Zoë||29990101|F')),
        422,
        'AE',
        ['PID^1^7'],
      ],
      [
        'unsupported message type',
        variant((s) => (s[0] = (s[0] as string).replace('OML^O21^OML_O21', 'ADT^A01'))),
        422,
        'AR',
        ['MSH^1^9'],
      ],
      [
        'unsupported version',
        variant((s) => (s[0] = (s[0] as string).replace('|2.5.1|', '|2.1|'))),
        422,
        'AR',
        ['MSH^1^12'],
      ],
      [
        'two placer numbers',
        variant((s) => (s[9] = (s[9] as string).replace(/OBR\|2\|[^|]+/, 'OBR|2|OTHER-1'))),
        422,
        'AE',
        ['ORC^1^2'],
      ],
      [
        'unknown order control',
        variant((s) => (s[3] = (s[3] as string).replace('ORC|NW', 'ORC|SN'))),
        422,
        'AR',
        ['ORC^1^1'],
      ],
      [
        'unknown character set',
        variant((s) => (s[0] = (s[0] as string).replace('UNICODE UTF-8', 'ISO IR87'))),
        422,
        'AR',
        ['MSH^1^18'],
      ],
    ];
    for (const [name, message, status, code, locations] of cases) {
      const ack = await post(message);
      expect([ack.status, ack.code, ack.locations], `${name}: ${ack.text}`).toEqual([status, code, locations]);
      expect(ack.controlId, name).toMatch(/^MSG-/);
    }
    const notHl7 = await post('{"resourceType":"Bundle"}');
    expect([notHl7.status, notHl7.code]).toEqual([400, 'AR']);
    const wrongType = await post(OML, { contentType: 'application/json' });
    expect([wrongType.status, wrongType.code]).toEqual([415, 'AR']);
    const anonymous = await post(OML, { key: null });
    expect([anonymous.status, anonymous.code]).toEqual([401, 'AR']);
    const response = await fetch(`${host.apiBaseUrl}/orders?limit=50`, { headers: { authorization: `ApiKey ${key}` } });
    expect(((await response.json()) as { items: unknown[] }).items).toHaveLength(2);
  });
});
