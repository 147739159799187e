import { createHash } from 'node:crypto';
import type { RequestMeta } from '../../audit/types.js';
import { DomainError } from '../../errors.js';
import type { OrderService } from '../../orders/orders.js';
import { buildAck, encodeAck } from './ack.js';
import { decodeMessage, headerOfText, type MessageHeader, parseOrderMessage } from './message.js';

export interface Hl7IntakeDependencies {
  orders: OrderService;
  clock?: () => Date;
}

export interface Hl7Answer {
  /** The ACK in the message's character set. */
  ack: Buffer;
  /** That character set's IANA name. */
  charset: string;
  /** Why the message was not accepted (the ACK says so too); undefined for AA. */
  refusal?: DomainError;
}

/** Paths whose failure means the message as a whole cannot be processed (AR) rather than an error in it (AE). */
const REJECTING = new Set(['MSH', 'MSH-9', 'MSH-12', 'MSH-18', 'ORC-1']);

/**
 * HL7 v2 order messages on top of the order domain. Every message gets an ACK: AA when done, AE
 * naming the fields in ERR segments, AR for what cannot be processed at all. A message resent with
 * the same MSH-3, MSH-4 and MSH-10 stores nothing new and gets the same ACK (its time is the order's).
 */
export class Hl7Intake {
  readonly #orders: OrderService;
  readonly #clock: () => Date;

  constructor(dependencies: Hl7IntakeDependencies) {
    this.#orders = dependencies.orders;
    this.#clock = dependencies.clock ?? (() => new Date());
  }

  async receive(tenant: string, bytes: Buffer, meta: RequestMeta, options: { mayUpdate: boolean }): Promise<Hl7Answer> {
    let header: MessageHeader | undefined;
    try {
      // MSH is ASCII up to MSH-18: read it first, so even a message in an unknown character set gets its MSA-2.
      header = headerOfText(bytes.toString('latin1'));
      const { text } = decodeMessage(bytes);
      header = headerOfText(text) ?? header;
      const { action } = parseOrderMessage(text);
      if (action.control !== 'NW' && !options.mayUpdate)
        throw new DomainError('forbidden', 'Cancelling or changing an order needs the permission orders:update.', {
          errors: [{ path: 'ORC-1', message: 'CA and XO need orders:update' }],
        });
      const at = await this.#apply(tenant, action, header as MessageHeader, meta);
      const encoded = encodeAck(buildAck(header, { code: 'AA', text: 'Message accepted' }, at), header);
      return { ack: encoded.bytes, charset: encoded.charset };
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      const errors = error.extras.errors ?? [];
      const code = errors.some((e) => REJECTING.has(e.path)) ? 'AR' : 'AE';
      const ack = buildAck(header, { code, kind: error.kind, text: error.detail, errors }, this.#clock().toISOString());
      const encoded = encodeAck(ack, header);
      return { ack: encoded.bytes, charset: encoded.charset, refusal: error };
    }
  }

  /** Carries out the order control; answers the time the ACK states (the order's, so a replay answers alike). */
  async #apply(
    tenant: string,
    action: ReturnType<typeof parseOrderMessage>['action'],
    header: MessageHeader,
    meta: RequestMeta,
  ): Promise<string> {
    if (action.control === 'NW') {
      const key = `hl7:${createHash('sha256')
        .update([header.sendingApplication, header.sendingFacility, header.controlId].join('|'))
        .digest('hex')}`;
      const created = await this.#orders.create(tenant, action.order, meta, key);
      return created.order.createdAt;
    }
    const found = (await this.#orders.list(tenant, { externalId: action.externalId, limit: 1 }, meta)).items[0];
    if (!found)
      throw new DomainError('not-found', 'No order has this placer number.', {
        errors: [{ path: 'ORC-2', message: 'unknown placer order number' }],
      });
    const wanted = action.control === 'CA' ? 'cancelled' : action.status;
    // Already there (a resent CA or XO): nothing to do, the same answer.
    if (found.status === wanted) return found.updatedAt;
    const updated = await this.#orders.update(
      tenant,
      found.id,
      action.control === 'CA'
        ? { status: 'cancelled', ...(action.reason ? { cancellationReason: action.reason } : {}) }
        : { status: wanted },
      () => true,
      meta,
    );
    return updated.order.updatedAt;
  }
}
