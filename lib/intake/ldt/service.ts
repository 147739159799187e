import { createHash } from 'node:crypto';
import type { RequestMeta } from '../../audit/types.js';
import type { OrderService } from '../../orders/orders.js';
import { ordersOfLdt } from './order.js';
import { parseLdt } from './parser.js';

export interface LdtIntakeDependencies {
  orders: OrderService;
}

export interface LdtResult {
  orders: { id: string; line: string; replayed: boolean }[];
}

/**
 * LDT 3 practice packets on top of the order domain. The whole file is read and every order mapped
 * before the first is stored; each order is then its own transaction, keyed by the sender (BSNR,
 * LANR) and its order number, so a file sent again stores nothing new.
 */
export class LdtIntake {
  readonly #orders: OrderService;

  constructor(dependencies: LdtIntakeDependencies) {
    this.#orders = dependencies.orders;
  }

  async receive(tenant: string, bytes: Buffer, charset: string | undefined, meta: RequestMeta): Promise<LdtResult> {
    const orders = ordersOfLdt(parseLdt(bytes, charset));
    const results: LdtResult['orders'] = [];
    for (const { order, at } of orders) {
      const sender = [order.orderingPhysician.bsnr ?? '', order.orderingPhysician.lanr ?? '', order.externalId].join(
        '|',
      );
      const key = `ldt:${createHash('sha256').update(sender).digest('hex')}`;
      const created = await this.#orders.create(tenant, order, meta, key);
      results.push({ id: created.order.id, line: at, replayed: created.replayed });
    }
    return { orders: results };
  }
}
