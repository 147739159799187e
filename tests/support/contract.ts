// Every answer the test suites get from LabVault's API is checked against the OpenAPI document:
// the status must be documented for that operation, documented headers must be there, and a JSON
// body must validate against the documented schema (ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses).
// A vitest setup file: it wraps fetch in each test file and checks what it saw after the file ran.
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsPlugin from 'ajv-formats';
import { afterAll, expect } from 'vitest';
import { apiDocument } from '../../lib/operations.js';

interface Seen {
  method: string;
  path: string;
  status: number;
  headers: Headers;
  contentType: string;
  body: string | undefined;
}

const seen: Seen[] = [];
const originalFetch = globalThis.fetch;
const API = /^http:\/\/127\.0\.0\.1:\d+\/api(\/[^?#]*)?/;

globalThis.fetch = async (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
  const response = await originalFetch(input, init);
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  const match = API.exec(url);
  if (match) {
    const contentType = response.headers.get('content-type') ?? '';
    const json = /json/.test(contentType);
    seen.push({
      method: (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase(),
      path: match[1] ?? '/',
      status: response.status,
      headers: response.headers,
      contentType,
      body: json ? await response.clone().text() : undefined,
    });
  }
  return response;
};

type Doc = {
  paths: Record<
    string,
    Record<
      string,
      {
        responses: Record<
          string,
          { headers?: Record<string, { required?: boolean }>; content?: Record<string, { schema?: unknown }> }
        >;
      }
    >
  >;
};

/** The document's path template that names this path (literal segments before parameters). */
function templateOf(doc: Doc, path: string): string | undefined {
  const parts = path.replace(/\/$/, '').split('/');
  let best: { template: string; literals: number } | undefined;
  for (const template of Object.keys(doc.paths)) {
    const t = template.split('/');
    if (t.length !== parts.length) continue;
    let literals = 0;
    const fits = t.every((segment, i) => {
      if (/^\{\w+\}$/.test(segment)) return (parts[i] ?? '') !== '';
      literals++;
      return segment.toLowerCase() === (parts[i] ?? '').toLowerCase();
    });
    if (fits && (!best || literals > best.literals)) best = { template, literals };
  }
  return best?.template;
}

const pointer = (...segments: string[]) => segments.map((s) => s.replaceAll('~', '~0').replaceAll('/', '~1')).join('/');

afterAll(() => {
  if (seen.length === 0) return;
  const doc = apiDocument() as unknown as Doc;
  const ajv = new Ajv2020({ strict: false, allErrors: false, validateFormats: true });
  (addFormatsPlugin as unknown as (a: Ajv2020) => void)(ajv);
  ajv.addSchema(doc as object, 'openapi');
  const violations: string[] = [];
  for (const answer of seen) {
    const template = templateOf(doc, answer.path);
    const operation = template ? doc.paths[template]?.[answer.method.toLowerCase()] : undefined;
    if (!template || !operation) continue; // paths and methods outside the contract (the tests' own probes)
    const where = `${answer.method} ${answer.path} → ${answer.status}`;
    const response = operation.responses[String(answer.status)];
    if (!response) {
      violations.push(`${where}: status not documented for ${answer.method} ${template}`);
      continue;
    }
    for (const [name, header] of Object.entries(response.headers ?? {})) {
      if (header.required && !answer.headers.has(name)) violations.push(`${where}: documented header ${name} missing`);
    }
    if (answer.body === undefined || answer.body === '' || answer.method === 'HEAD') continue;
    const mediaType = Object.keys(response.content ?? {}).find((t) =>
      answer.contentType.startsWith(t.split(';')[0] ?? t),
    );
    if (!mediaType) {
      violations.push(`${where}: content type ${answer.contentType} not documented`);
      continue;
    }
    if (!response.content?.[mediaType]?.schema) continue;
    const validate = ajv.getSchema(
      `openapi#/${pointer('paths', template, answer.method.toLowerCase(), 'responses', String(answer.status), 'content', mediaType, 'schema')}`,
    );
    if (!validate) {
      violations.push(`${where}: no schema to validate with`);
      continue;
    }
    let body: unknown;
    try {
      body = JSON.parse(answer.body);
    } catch {
      violations.push(`${where}: body is not JSON`);
      continue;
    }
    if (!validate(body)) violations.push(`${where}: ${ajv.errorsText(validate.errors).slice(0, 300)}`);
  }
  expect([...new Set(violations)]).toEqual([]);
});
