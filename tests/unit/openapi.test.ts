import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { ALL_OPERATIONS, buildOpenApiDocument, openApiPath, requiredPermission } from '../../lib/http/openapi.js';

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3.1', async () => {
    const validator = new Validator();
    const result = await validator.validate(buildOpenApiDocument());
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('documents every operation with its permission', () => {
    const doc = buildOpenApiDocument() as { paths: Record<string, Record<string, { operationId: string; 'x-permission'?: string }>> };
    for (const op of ALL_OPERATIONS) {
      const entry = doc.paths[openApiPath(op.route)]?.[op.method.toLowerCase()];
      expect(entry?.operationId).toBe(op.id);
      expect(entry?.['x-permission']).toBe(requiredPermission(op));
    }
  });
});
