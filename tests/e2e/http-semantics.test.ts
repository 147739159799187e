// HTTP as RFC 9110 says: strong entity tags of LabVault's own, If-Match with * and lists,
// If-None-Match → 304, HEAD for every GET, OPTIONS and 405 with Allow, WWW-Authenticate on 401.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleOrder } from '../support/fixtures.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';

let host: RunningHost;
let key: string;

async function http(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: unknown,
): Promise<{ status: number; headers: Headers; text: string }> {
  const response = await fetch(`${host.apiBaseUrl}${path}`, {
    method,
    headers: { authorization: key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

describe('HTTP semantics (RFC 9110)', () => {
  beforeAll(async () => {
    host = await startHost();
    admin(host.dataDir, ['tenant', 'create', '--id', 'lab-http', '--name', 'Lab HTTP']);
    key = `ApiKey ${String(admin(host.dataDir, ['integration', 'create', '--tenant', 'lab-http', '--name', 'lis', '--permissions', 'orders:create,orders:read,orders:update']).json?.apiKey)}`;
  });

  afterAll(async () => {
    await host?.kill();
  });

  it('tags orders with strong ETags of its own and honours If-Match with *, lists and strong comparison', async () => {
    const created = await http('POST', '/orders', {}, exampleOrder({ externalId: 'HTTP-1' }));
    expect(created.status).toBe(201);
    const id = (JSON.parse(created.text) as { id: string }).id;
    const first = created.headers.get('etag') ?? '';
    expect(first).toMatch(/^"[A-Za-z0-9_-]{20,}"$/); // strong, opaque: not the table's W/"datetime'…'"
    const read = await http('GET', `/orders/${id}`);
    expect(read.headers.get('etag')).toBe(first);
    // Weak tags never satisfy If-Match (strong comparison), even with the right value.
    expect((await http('PATCH', `/orders/${id}`, { 'if-match': `W/${first}` }, { status: 'in-progress' })).status).toBe(
      412,
    );
    expect((await http('PATCH', `/orders/${id}`, {}, { status: 'in-progress' })).status).toBe(428);
    const moved = await http('PATCH', `/orders/${id}`, { 'if-match': `"stale", ${first}` }, { status: 'in-progress' });
    expect(moved.status).toBe(200);
    const second = moved.headers.get('etag') ?? '';
    expect(second).not.toBe(first);
    expect((await http('PATCH', `/orders/${id}`, { 'if-match': first }, { status: 'completed' })).status).toBe(412);
    expect(
      (
        await http(
          'PATCH',
          `/orders/${id}`,
          { 'if-match': '*', 'content-type': 'application/merge-patch+json' },
          { status: 'completed' },
        )
      ).status,
    ).toBe(200);
    expect(
      (await http('PATCH', `/orders/${'f'.repeat(32)}`, { 'if-match': '*' }, { status: 'completed' })).status,
    ).toBe(404);
  });

  it('answers a conditional GET with 304, HEAD like GET without a body, and every GET with an ETag', async () => {
    const created = await http('POST', '/orders', {}, exampleOrder({ externalId: 'HTTP-2' }));
    const id = (JSON.parse(created.text) as { id: string }).id;
    const read = await http('GET', `/orders/${id}`);
    const etag = read.headers.get('etag') ?? '';
    const notModified = await http('GET', `/orders/${id}`, { 'if-none-match': `"other", ${etag}` });
    expect(notModified.status).toBe(304);
    expect(notModified.text).toBe('');
    expect(notModified.headers.get('etag')).toBe(etag);
    expect((await http('GET', `/orders/${id}`, { 'if-none-match': '"other"' })).status).toBe(200);
    const head = await http('HEAD', `/orders/${id}`);
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
    expect(head.headers.get('etag')).toBe(etag);
    expect(Number(head.headers.get('content-length'))).toBe(Buffer.byteLength(read.text));
    // A list has a representation tag too, and answers 304 the same way.
    const list = await http('GET', '/orders?limit=5');
    expect(list.headers.get('etag')).toMatch(/^"/);
    expect((await http('GET', '/orders?limit=5', { 'if-none-match': list.headers.get('etag') ?? '' })).status).toBe(
      304,
    );
    expect((await http('HEAD', '/health')).status).toBe(200);
  });

  it('answers OPTIONS with Allow, other methods with 405 and Allow, and 401 with WWW-Authenticate', async () => {
    const options = await http('OPTIONS', '/orders');
    expect(options.status).toBe(204);
    expect(options.headers.get('allow')).toBe('GET, HEAD, OPTIONS, POST');
    const notAllowed = await http('DELETE', '/orders');
    expect(notAllowed.status).toBe(405);
    expect(notAllowed.headers.get('allow')).toBe('GET, HEAD, OPTIONS, POST');
    expect(notAllowed.headers.get('content-type')).toContain('application/problem+json');
    expect((await http('PUT', `/orders/${'a'.repeat(32)}`)).headers.get('allow')).toBe('GET, HEAD, OPTIONS, PATCH');
    for (const auth of ['', 'Bearer not-a-token', 'ApiKey lvk_lab-http_0000000000000000_' + '0'.repeat(64)]) {
      const denied = await fetch(`${host.apiBaseUrl}/orders`, { headers: auth ? { authorization: auth } : {} });
      expect(denied.status).toBe(401);
      expect(denied.headers.get('www-authenticate')).toBe('Bearer realm="labvault", ApiKey realm="labvault"');
    }
  });
});
