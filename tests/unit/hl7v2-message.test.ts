// The HL7 v2 reader under fast-check: whatever a sender gets wrong, the answer is an order that
// passes the order model, or a domain error naming fields (which becomes an AE or AR ACK).
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../../lib/errors.js';
import { buildAck } from '../../lib/intake/hl7v2/ack.js';
import { decodeMessage, headerOfText, parseOrderMessage } from '../../lib/intake/hl7v2/message.js';
import { createOrderSchema } from '../../lib/orders/schemas.js';

const segments = readFileSync('docs/examples/order.oml-o21.hl7', 'utf8').trim().split('\n');

function outcomeOf(bytes: Buffer): 'order' | 'refused' {
  try {
    const { text } = decodeMessage(bytes);
    const { action } = parseOrderMessage(text);
    if (action.control === 'NW') expect(createOrderSchema.safeParse(action.order).success).toBe(true);
    return 'order';
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    const errors = (error as DomainError).extras.errors ?? [];
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) expect(e.path).toMatch(/^[A-Z][A-Z0-9]{2}(\[\d+\])?(-\d+)?$/);
    // Whatever it was, an ACK can be built for it.
    const ack = buildAck(
      headerOfText(bytes.toString('latin1')),
      { code: 'AE', text: (error as DomainError).detail, errors },
      new Date().toISOString(),
    );
    expect(ack).toMatch(/^MSH\|/);
    return 'refused';
  }
}

describe('parseOrderMessage', () => {
  it('reads the golden OML^O21', () => {
    expect(outcomeOf(Buffer.from(segments.join('\r')))).toBe('order');
  });

  it('answers every field mutation with an order or a located refusal', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: segments.length - 1 }),
            fc.integer({ min: 1, max: 20 }),
            fc.oneof(
              fc.string({ maxLength: 20 }),
              fc.constantFrom('', '""', '^^^', '\\F\\', '&&', '~', '20261301', '1979'),
            ),
          ),
          { minLength: 1, maxLength: 3 },
        ),
        (mutations) => {
          const copy = segments.map((s) => s.split('|'));
          for (const [segment, field, value] of mutations) {
            const fields = copy[segment] as string[];
            if (segment === 0 && field < 3) continue; // keep the delimiters, or nothing parses at all
            while (fields.length <= field) fields.push('');
            fields[field] = value;
          }
          seen.add(outcomeOf(Buffer.from(copy.map((f) => f.join('|')).join('\r'))));
        },
      ),
      { numRuns: 400, seed: 20261130 },
    );
    expect(seen).toEqual(new Set(['order', 'refused']));
  });

  it('refuses arbitrary bytes as not HL7, never with anything but a domain error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        outcomeOf(Buffer.from(bytes));
      }),
      { numRuns: 300, seed: 20261130 },
    );
  });
});
