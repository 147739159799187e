import { createRequire } from 'node:module';
import type { HttpResponseInit } from '@azure/functions';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineOperation } from '../../lib/http/operation.js';
import {
  clientAddressOf,
  createHandler,
  MAX_BODY_BYTES,
  parseJsonStrict,
  type PipelineServices,
} from '../../lib/http/pipeline.js';
import { unauthenticated } from '../../lib/errors.js';
import { line } from '../../lib/fields.js';
import type { Principal } from '../../lib/identity/permissions.js';
import { createLogger } from '../../lib/observability/logger.js';

const { HttpRequest, InvocationContext } = createRequire(import.meta.url)(
  '@azure/functions',
) as typeof import('@azure/functions');

const principal: Principal = {
  kind: 'integration',
  realm: 't1',
  tenant: 't1',
  id: 'i1',
  roles: [],
  permissions: new Set(['orders:create']),
  operatorPermissions: new Set(),
  scope: 'full',
};
const logLines: string[] = [];
const services: PipelineServices = {
  logger: createLogger((l) => logLines.push(l), 'debug'),
  recordStaffAccess: async () => undefined,
  trustedProxies: [],
  rateLimiter: { take: async () => ({ allowed: true }) },
  authenticator: {
    async authenticate(authorization) {
      if (authorization === 'ApiKey good') return principal;
      if (authorization === 'ApiKey readonly') return { ...principal, permissions: new Set(['orders:read']) };
      throw unauthenticated();
    },
  },
};

const echo = defineOperation({
  id: 'echo',
  method: 'POST',
  route: 'echo',
  tag: 't',
  summary: 'echo',
  access: { permission: 'orders:create' },
  body: z.strictObject({
    name: line(20),
    count: z.number().int().optional(),
    nested: z.strictObject({ a: z.string() }).optional(),
  }),
  responses: {},
});

let calls = 0;
const handler = createHandler(
  async () => services,
  echo,
  async ({ body }) => {
    calls++;
    if (body.name === 'explode') throw new Error('secret detail Mustermann at /srv/app.ts:12');
    return { status: 200, body };
  },
);

async function call(
  body: string | Buffer | undefined,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const request = new HttpRequest({
    method: 'POST',
    url: 'http://localhost/api/echo',
    headers: { authorization: 'ApiKey good', 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? { string: body } : { bytes: body } }),
  });
  const response: HttpResponseInit = await handler(request, new InvocationContext());
  const h = new Headers(response.headers as Record<string, string>);
  return {
    status: response.status ?? 200,
    headers: h,
    json: response.body ? (JSON.parse(response.body as string) as Record<string, unknown>) : {},
  };
}

describe('the request pipeline', () => {
  it('passes a valid body to the handler', async () => {
    const r = await call('{"name":"ok","count":2}');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ name: 'ok', count: 2 });
  });

  it.each([
    ['malformed JSON', '{"name":', 400],
    ['wrong type', '{"name":5}', 400],
    ['missing field', '{}', 400],
    ['unknown field', '{"name":"a","extra":1}', 400],
    ['__proto__ key', '{"name":"a","__proto__":{"admin":true}}', 400],
    ['nested constructor key', '{"name":"a","nested":{"a":"x","constructor":{"prototype":{}}}}', 400],
    ['__proto__ key spelled with escapes', '{"name":"a","\\u005f_pr\\u006fto__":{"admin":true}}', 400],
    ['control character', '{"name":"a\\u0000b"}', 400],
    ['bidi override', '{"name":"a\\u202eb"}', 400],
    ['huge string', JSON.stringify({ name: 'x'.repeat(100_000) }), 400],
    ['not an object', '[1,2]', 400],
  ])('answers %s with a problem and never calls the handler', async (_label, body, status) => {
    const before = calls;
    const r = await call(body);
    expect(r.status).toBe(status);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(r.json).toMatchObject({ status, title: expect.any(String), detail: expect.any(String) });
    expect(calls).toBe(before);
  });

  it('reports each validation error with its path', async () => {
    const r = await call('{"name":5,"count":"x"}');
    expect(r.json.errors).toEqual(
      expect.arrayContaining([expect.objectContaining({ path: '/name' }), expect.objectContaining({ path: '/count' })]),
    );
  });

  it('refuses bodies over 1 MiB with 413', async () => {
    const r = await call(Buffer.alloc(MAX_BODY_BYTES + 1, 0x20));
    expect(r.status).toBe(413);
    const declared = await call('{"name":"a"}', { 'content-length': String(2 * 1024 * 1024) });
    expect(declared.status).toBe(413);
  });

  it('refuses other media types with 415', async () => {
    expect((await call('name=a', { 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(415);
    expect((await call('{"name":"a"}', { 'content-type': 'text/plain' })).status).toBe(415);
  });

  it('answers 401 without credentials and 403 without the permission', async () => {
    expect((await call('{"name":"a"}', { authorization: '' })).status).toBe(401);
    expect((await call('{"name":"a"}', { authorization: 'ApiKey readonly' })).status).toBe(403);
  });

  it('echoes a sent correlation id and makes one otherwise', async () => {
    expect((await call('{"name":"a"}', { 'x-correlation-id': 'abc-123' })).headers.get('x-correlation-id')).toBe(
      'abc-123',
    );
    expect(
      (await call('{"name":"a"}', { 'x-correlation-id': 'bad id <script>' })).headers.get('x-correlation-id'),
    ).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('sets no-store and security headers on every answer', async () => {
    for (const r of [await call('{"name":"a"}'), await call('{')]) {
      expect(r.headers.get('cache-control')).toBe('no-store');
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('content-security-policy')).toContain("default-src 'none'");
    }
  });

  it('hides unexpected errors behind a 500 without message or stack, and logs no detail', async () => {
    logLines.length = 0;
    const r = await call('{"name":"explode"}');
    expect(r.status).toBe(500);
    const text = JSON.stringify(r.json) + logLines.join('\n');
    expect(text).not.toContain('Mustermann');
    expect(text).not.toContain('app.ts');
    expect(text).not.toContain('secret detail');
    expect(logLines.some((l) => l.includes('"errorName":"Error"'))).toBe(true);
  });
});

describe('the client address', () => {
  const from = (xff: string | undefined, trusted: string[] = []) =>
    clientAddressOf(
      new HttpRequest({
        method: 'GET',
        url: 'http://localhost/api/x',
        headers: xff === undefined ? {} : { 'x-forwarded-for': xff },
      }),
      trusted,
    );

  it('is the right-most entry (what the platform saw), whatever the caller put in front', () => {
    expect(from('10.0.0.9, 203.0.113.4')).toBe('203.0.113.4');
    expect(from('1.1.1.1,2.2.2.2, 198.51.100.7')).toBe('198.51.100.7');
    expect(from(undefined)).toBeUndefined();
  });

  it('takes ip:port and [ipv6]:port as their address, and IPv4-mapped IPv6 as IPv4', () => {
    expect(from('203.0.113.4:51234')).toBe('203.0.113.4');
    expect(from('[2001:db8::1]:443')).toBe('2001:db8::1');
    expect(from('::ffff:203.0.113.4')).toBe('203.0.113.4');
  });

  it('walks past trusted proxies to the right-most untrusted entry, and only past them', () => {
    expect(from('198.51.100.7, 10.0.0.2, 127.0.0.1', ['127.0.0.1', '10.0.0.2'])).toBe('198.51.100.7');
    expect(from('9.9.9.9, 198.51.100.7, 127.0.0.1', ['127.0.0.1'])).toBe('198.51.100.7');
    expect(from('9.9.9.9, 198.51.100.7:4000, 127.0.0.1', ['127.0.0.1'])).toBe('198.51.100.7');
  });

  it('is unknown when the entry that counts is not an address', () => {
    expect(from('not-an-ip')).toBeUndefined();
    expect(from('198.51.100.7, garbage, 127.0.0.1', ['127.0.0.1'])).toBeUndefined();
  });
});

describe('parseJsonStrict', () => {
  /** The reference: every key checked by a reviver. */
  const reference = (text: string): unknown =>
    JSON.parse(text, (key, value: unknown) => {
      if (['__proto__', 'constructor', 'prototype'].includes(key)) throw new Error('forbidden');
      return value;
    });
  const outcome = (parse: (text: string) => unknown, text: string) => {
    try {
      return { value: parse(text) };
    } catch {
      return { refused: true };
    }
  };
  // Keys (and string values) drawn from the forbidden words and their neighbours; any character of a
  // key may be written as a \u escape, which JSON.parse decodes before anyone sees the key.
  const word = fc.constantFrom('__proto__', 'constructor', 'prototype', 'proto', 'name', 'a', 'x__proto__');
  const escapeSome = (text: string, mask: number[]) =>
    [...text]
      .map((c, i) =>
        (mask[i % mask.length] ?? 0) % 3 === 0 ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c,
      )
      .join('');
  const json: fc.Arbitrary<string> = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      fc.integer().map(String),
      word.map((w) => JSON.stringify(w)),
      fc.array(tie('value'), { maxLength: 3 }).map((items) => `[${items.join(',')}]`),
      tie('object'),
    ),
    object: fc
      .array(fc.tuple(word, fc.array(fc.nat(), { minLength: 1, maxLength: 12 }), fc.boolean(), tie('value')), {
        maxLength: 4,
      })
      .map(
        (members) =>
          `{${members.map(([key, mask, escaped, value]) => `"${escaped ? escapeSome(key, mask) : key}":${value}`).join(',')}}`,
      ),
  })).object as fc.Arbitrary<string>;

  it('refuses exactly what a reviver on every key refuses, however the keys are spelled', () => {
    fc.assert(
      fc.property(json, (text) => {
        expect(outcome(parseJsonStrict, text)).toEqual(outcome(reference, text));
      }),
      { numRuns: 2000 },
    );
  });
});
