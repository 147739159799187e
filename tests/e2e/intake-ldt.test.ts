// LDT 3 intake over HTTP against a local host: the golden practice packet of docs/examples (ISO
// 8859-15, umlauts and the euro sign) creates its order, a resend stores nothing, and broken files
// are refused naming the line and field, storing nothing.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ldtFile, ldtLines } from '../support/ldt.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';

let host: RunningHost;
let key: string;
const TENANT = 'lab-ldt';
const GOLDEN = readFileSync('docs/examples/order.ldt');

async function upload(body: Buffer, contentType = 'text/plain; charset=iso-8859-15') {
  const response = await fetch(`${host.apiBaseUrl}/ldt`, {
    method: 'POST',
    headers: { authorization: `ApiKey ${key}`, 'content-type': contentType },
    body,
  });
  return {
    status: response.status,
    contentType: response.headers.get('content-type') ?? '',
    text: await response.text(),
  };
}

async function orderCount(): Promise<number> {
  const response = await fetch(`${host.apiBaseUrl}/orders?limit=200`, { headers: { authorization: `ApiKey ${key}` } });
  return ((await response.json()) as { items: unknown[] }).items.length;
}

beforeAll(async () => {
  host = await startHost();
  admin(host.dataDir, ['tenant', 'create', '--id', TENANT, '--name', 'Lab LDT']);
  key = String(
    admin(host.dataDir, [
      'integration',
      'create',
      '--tenant',
      TENANT,
      '--name',
      'pvs',
      '--permissions',
      'orders:create,orders:read',
    ]).json?.apiKey,
  );
});
afterAll(async () => {
  await host?.kill();
});

describe('LDT 3 intake', () => {
  it('creates the order of the golden practice packet, umlauts and euro sign intact', async () => {
    const answer = await upload(GOLDEN);
    expect(answer.status, answer.text).toBe(200);
    const { orders } = JSON.parse(answer.text) as { orders: { id: string; replayed: boolean; line: string }[] };
    expect(orders).toHaveLength(1);
    expect(orders[0]).toMatchObject({ replayed: false, line: 'line 4' });
    const order = await (
      await fetch(`${host.apiBaseUrl}/orders/${orders[0]?.id}`, { headers: { authorization: `ApiKey ${key}` } })
    ).json();
    expect(order).toMatchObject({
      externalId: 'PS-2026-0815',
      patient: {
        id: 'PAT-4711',
        firstName: 'Anna-Lena Sophie',
        lastName: 'Müller-Lüdenscheidt',
        birthDate: '1985-04-17',
        sex: 'female',
      },
      orderingPhysician: { name: 'Dr. med. Jürgen Weißenfels', lanr: '838382201', bsnr: '021234567' },
      priority: 'urgent',
      clinicalInformation: 'V. a. Basalzellkarzinom, Nasenflügel links; Eigenanteil 15 €',
      examinations: ['hist', 'ihc-ber-ep4'],
      specimens: [
        {
          id: 'S-0815-1',
          type: 'stanzbiopsie',
          bodySite: 'Nasenflügel links',
          collectedAt: '2026-11-27T14:30:00+01:00',
        },
        { id: 'S-0815-2', type: 'exzidat', bodySite: 'Wange rechts', collectedAt: '2026-11-27T14:45:00+01:00' },
      ],
    });
  });

  it('stores nothing new when the same file comes again', async () => {
    const answer = await upload(GOLDEN);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text).orders[0].replayed).toBe(true);
    expect(await orderCount()).toBe(1);
  });

  it('refuses broken files naming the line and the field, in plain text, storing nothing', async () => {
    const lines = ldtLines(GOLDEN);
    const withLines = (change: (l: string[]) => void) => {
      const copy = lines.map((l) => l.replace('PS-2026-0815', 'PS-2026-0999'));
      change(copy);
      return ldtFile(copy);
    };
    const wrongLength = Buffer.from(GOLDEN);
    wrongLength.write('099', GOLDEN.indexOf('8310') - 3); // the length of line 5
    const cases: [string, Buffer, number, string][] = [
      ['a wrong line length', wrongLength, 400, 'line 5, field 8310'],
      ['LDT 2 version line', withLines((l) => l.splice(1, 0, '9212 01.00')), 400, 'line 2, field 9212'],
      ['an object never closed', withLines((l) => l.splice(l.indexOf('8003 Obj_0045'), 1)), 400, 'line'],
      [
        'a birth date in the future',
        withLines((l) => (l[l.indexOf('3103 19850417')] = '3103 29990101')),
        422,
        'field 3103',
      ],
      [
        'no order number',
        withLines((l) =>
          l.splice(
            l.findIndex((x) => x.startsWith('8310')),
            1,
          ),
        ),
        422,
        'field 8310 missing',
      ],
      ['no collection time', withLines((l) => l.splice(l.indexOf('7278 20261127'), 1)), 422, 'field 8219'],
      ['no packet end', withLines((l) => l.splice(-2, 2)), 422, 'record 8231'],
    ];
    for (const [name, file, status, where] of cases) {
      const answer = await upload(file);
      expect([answer.status, answer.contentType.split(';')[0]], `${name}: ${answer.text}`).toEqual([
        status,
        'text/plain',
      ]);
      expect(answer.text, name).toContain(where);
      expect(answer.text, name).not.toContain('Müller');
    }
    expect((await upload(GOLDEN, 'application/json')).status).toBe(415);
    expect((await upload(GOLDEN, 'text/plain; charset=koi8-r')).status).toBe(415);
    expect(await orderCount()).toBe(1);
  });
});
