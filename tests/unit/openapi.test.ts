import { Validator } from '@seriousme/openapi-schema-validator';
import { validate as scalarValidate } from '@scalar/openapi-parser';
import { describe, expect, it } from 'vitest';
import { ALL_OPERATIONS, apiDocument } from '../../lib/operations.js';
import { openApiPath, requiredPermission } from '../../lib/http/openapi.js';

type Doc = {
  paths: Record<
    string,
    Record<
      string,
      {
        operationId: string;
        'x-permission'?: string;
        responses: Record<string, { headers?: Record<string, unknown>; content?: Record<string, unknown> }>;
        requestBody?: { content: Record<string, unknown> };
      }
    >
  >;
};

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3.1 for two independent validators', async () => {
    const validator = new Validator();
    const result = await validator.validate(apiDocument());
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    const scalar = await scalarValidate(apiDocument());
    expect(scalar.errors ?? []).toEqual([]);
    expect(scalar.valid).toBe(true);
  });

  it('documents every operation with its permission', () => {
    const doc = apiDocument() as Doc;
    for (const op of ALL_OPERATIONS) {
      const entry = doc.paths[openApiPath(op.route)]?.[op.method.toLowerCase()];
      expect(entry?.operationId).toBe(op.id);
      expect(entry?.['x-permission']).toBe(requiredPermission(op));
    }
  });

  it('lists the statuses and headers the pipeline adds: 401 with WWW-Authenticate, 413/415 with a body, 429 and 503 with Retry-After, 304 and ETag on GET, Location on 201/202', () => {
    const doc = apiDocument() as Doc;
    for (const op of ALL_OPERATIONS) {
      const responses = doc.paths[openApiPath(op.route)]?.[op.method.toLowerCase()]?.responses ?? {};
      const where = `${op.method} ${op.route}`;
      if (op.access !== 'public') expect(responses['401']?.headers, where).toHaveProperty('WWW-Authenticate');
      if (op.body) for (const s of ['400', '413', '415']) expect(responses, where).toHaveProperty(s);
      if (op.rateLimit) expect(responses['429']?.headers, where).toHaveProperty('Retry-After');
      if (op.id !== 'openApiDocument') expect(responses['503']?.headers, where).toHaveProperty('Retry-After');
      if (op.method === 'GET') {
        expect(responses, where).toHaveProperty('304');
        expect(responses['200']?.headers, where).toHaveProperty('ETag');
      }
      for (const s of ['201', '202']) if (responses[s]) expect(responses[s]?.headers, where).toHaveProperty('Location');
    }
    expect(doc.paths['/orders/{id}']?.patch?.requestBody?.content).toHaveProperty('application/merge-patch+json');
    expect(doc.paths['/orders/{id}']?.options?.responses['204']?.headers).toHaveProperty('Allow');
    expect(doc.paths['/orders/{id}']?.head?.operationId).toBe('getOrderHead');
  });
});
