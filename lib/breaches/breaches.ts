import { createHash, createHmac, randomBytes } from 'node:crypto';
import { odata, type TableClient, type TransactionAction } from '@azure/data-tables';
import type { AuditLog } from '../audit/audit-log.js';
import type { RequestMeta } from '../audit/types.js';
import type { AppConfig } from '../config.js';
import type { TenantCrypto } from '../crypto/field-cipher.js';
import { conflict, notFound, unprocessable } from '../errors.js';
import type { SecurityAlertService } from '../identity/security-alerts.js';
import {
  checkUrl,
  DEFAULT_OUTBOUND_POLICY,
  guardedPost,
  OutboundError,
  type OutboundPolicy,
  resolveChecked,
} from '../net/outbound.js';
import type { Logger } from '../observability/logger.js';
import { createNewRow, landedAlready } from '../storage/conditional-writes.js';
import { isConflict, isNotFound, isPreconditionFailed } from '../storage/errors.js';
import { padSeq, tenantPartition } from '../storage/keys.js';
import type { TenantService } from '../tenants/tenants.js';
import { auditEvent } from '../audit/events.js';

type BreachNature = 'confidentiality' | 'integrity' | 'availability';
type BreachStatus = 'draft' | 'open' | 'closed' | 'not-notified';

export interface BreachInput {
  detectedAt: string;
  description: string;
  tenants?: string[];
  suspectedPrincipal?: string;
  window?: { from: string; to: string };
  nature: BreachNature[];
  dataCategories: string[];
  likelyConsequences: string;
  measures: string;
  keysExposed: boolean;
  risk?: 'unlikely' | 'risk' | 'high-risk';
}

/** What a webhook delivery carries: a notification (its sequence number) or a reminder of one. */
export interface DeliveryMessage {
  kind: 'notification' | 'reminder';
  seq: number;
  /** For a reminder: hours after awareness. */
  hours?: number;
}

/** The id a tenant sees for one notification (GET /api/breach-notifications) and acknowledges by. */
const notificationIdOf = (breachId: string, seq: number): string => `${breachId}-${seq}`;

export interface TenantScope {
  tenant: string;
  dataSubjects: number;
  records: number;
  recordsByCategory: Record<string, number>;
}

export interface BreachTiming {
  awareAt: string;
  processorDeadline: string;
  controllerDeadline: string;
  reminderHours: number[];
  escalationHours: number;
  analysisReminderHours: number;
  /** Seconds before a failed webhook delivery is tried again (it doubles from there). */
  firstRetrySeconds: number;
}

type BreachRow = {
  partitionKey: string;
  rowKey: string;
  id: string;
  status: BreachStatus;
  awareAt: string;
  input: string;
  scope?: string;
  processorDeadline: string;
  controllerDeadline: string;
  updates?: string;
  analysis?: string;
  decision?: string;
  authority?: string;
  fromAlert?: string;
  closedAt?: string;
  /** The last officer's change (see #changeRecord). */
  changeId?: string;
};

type NoticeRow = {
  partitionKey: string;
  rowKey: string;
  breachId: string;
  seq: number;
  sentAt: string;
  content: string;
  acknowledgedAt?: string;
  acknowledgedBy?: string;
};

const PARTITION = (id: string) => `breach~${id}`;
const NOTICE_AREA = 'breaches';
const HOUR = 3600 * 1000;

/**
 * The breach register and its duties (GDPR Art. 33): every breach is recorded, notified or not;
 * affected tenants are told at once what is known (33(3)), in phases as more is learnt (33(4)), in
 * LabVault and on their webhook (HMAC-signed, retried, every attempt recorded), with the processor's
 * own deadline and the controller's 72 hours shown. The orchestration drives reminders and waits.
 */
export class BreachService {
  readonly #platform: TableClient;
  readonly #tenantData: TableClient;
  readonly #audit: AuditLog;
  readonly #crypto: TenantCrypto;
  readonly #tenants: TenantService;
  readonly #alerts: SecurityAlertService;
  readonly #logger: Logger;
  readonly #config: AppConfig['breach'];
  readonly #clock: () => Date;
  readonly #outbound: OutboundPolicy;

  constructor(options: {
    platform: TableClient;
    tenantData: TableClient;
    audit: AuditLog;
    crypto: TenantCrypto;
    tenants: TenantService;
    alerts: SecurityAlertService;
    logger: Logger;
    config: AppConfig['breach'];
    clock?: () => Date;
    /** The outbound guard's policy (ports, loopback for local tests). */
    outbound?: OutboundPolicy;
  }) {
    this.#platform = options.platform;
    this.#tenantData = options.tenantData;
    this.#audit = options.audit;
    this.#crypto = options.crypto;
    this.#tenants = options.tenants;
    this.#alerts = options.alerts;
    this.#logger = options.logger;
    this.#config = options.config;
    this.#clock = options.clock ?? (() => new Date());
    this.#outbound = options.outbound ?? DEFAULT_OUTBOUND_POLICY;
  }

  async register(
    input: BreachInput,
    options: { draft?: boolean; fromAlert?: string } = {},
  ): Promise<{ id: string; timing: BreachTiming }> {
    for (const tenant of input.tenants ?? [])
      if (!(await this.#tenants.get(tenant)))
        throw unprocessable(`No tenant "${tenant}".`, [{ path: '/tenants', message: `unknown tenant ${tenant}` }]);
    const id = randomBytes(12).toString('hex');
    const now = this.#clock();
    const timing = this.#timing(now);
    const row: BreachRow = {
      partitionKey: PARTITION(id),
      rowKey: 'record',
      id,
      status: options.draft ? 'draft' : 'open',
      awareAt: timing.awareAt,
      input: JSON.stringify(input),
      processorDeadline: timing.processorDeadline,
      controllerDeadline: timing.controllerDeadline,
      ...(options.fromAlert ? { fromAlert: options.fromAlert } : {}),
    };
    await createNewRow(this.#platform, row);
    await this.timeline(
      id,
      options.draft ? 'draft-created' : 'registered',
      options.fromAlert ? `from alert ${options.fromAlert}` : 'reported by a security officer',
    );
    return { id, timing };
  }

  /** A draft from a brute-force/spraying alert: recorded, never notified until an officer confirms. */
  async draftFromAlert(alertId: string): Promise<string> {
    const alert = (await this.#alerts.list(500)).find((a) => a.id === alertId);
    if (!alert) throw notFound('No such alert.');
    const { id } = await this.register(
      {
        detectedAt: alert.detectedAt,
        description: `Draft from security alert ${alert.kind}: ${alert.summary}`,
        ...(alert.realm && alert.realm !== 'operator' ? { tenants: [alert.realm] } : {}),
        nature: ['confidentiality'],
        dataCategories: ['account credentials'],
        likelyConsequences: 'to be assessed',
        measures: 'to be assessed',
        keysExposed: false,
      },
      { draft: true, fromAlert: alertId },
    );
    return id;
  }

  /** Confirms a draft for notification; the caller starts the orchestration. */
  async confirmDraft(id: string): Promise<BreachTiming> {
    const row = await this.#row(id);
    if (row.status !== 'draft') throw conflict(`The breach is ${row.status}.`);
    if (!(await this.#changeRecord(row, { status: 'open' })))
      throw conflict('The breach changed meanwhile; reload it.');
    await this.timeline(id, 'confirmed', 'draft confirmed for notification');
    return this.timingOf(row);
  }

  /** Documents a decision not to notify, with its reasoning (Art. 33(5)). */
  async decideNotToNotify(id: string, reasoning: string): Promise<void> {
    const row = await this.#row(id);
    if (row.status !== 'draft')
      throw conflict(`The breach is ${row.status}; only drafts can be closed without notification.`);
    const closed = await this.#changeRecord(row, {
      status: 'not-notified',
      decision: JSON.stringify({ notify: false, reasoning, at: this.#clock().toISOString() }),
      closedAt: this.#clock().toISOString(),
    });
    if (!closed) throw conflict('The breach changed meanwhile; reload it.');
    await this.timeline(id, 'not-notified', reasoning);
  }

  /**
   * Changes the breach record under the ETag it was read with; false when it changed since (of two
   * officers deciding at once, one wins). The change id makes each attempt's write its own, so a
   * write whose answer was lost is recognised as made.
   */
  async #changeRecord(row: BreachRow, fields: Partial<BreachRow>): Promise<boolean> {
    const change = {
      partitionKey: row.partitionKey,
      rowKey: row.rowKey,
      ...fields,
      changeId: randomBytes(12).toString('hex'),
    };
    try {
      await this.#platform.updateEntity(change, 'Merge', { etag: (row as BreachRow & { etag: string }).etag });
    } catch (error) {
      if (await landedAlready(this.#platform, change, error)) return true;
      if (isPreconditionFailed(error)) return false;
      throw error;
    }
    return true;
  }

  timingOf(row: { awareAt: string }): BreachTiming {
    return this.#timing(new Date(row.awareAt));
  }

  #timing(aware: Date): BreachTiming {
    return {
      awareAt: aware.toISOString(),
      processorDeadline: new Date(aware.getTime() + this.#config.processorDeadlineHours * HOUR).toISOString(),
      controllerDeadline: new Date(aware.getTime() + 72 * HOUR).toISOString(),
      reminderHours: this.#config.reminderHours,
      escalationHours: this.#config.escalationHours,
      analysisReminderHours: this.#config.analysisReminderHours,
      firstRetrySeconds: this.#config.firstRetrySeconds,
    };
  }

  /**
   * Affected tenants and counts: the given tenants, or every tenant whose audit log shows the
   * suspected principal in the window. Data subjects are distinct patient pseudonyms; records are
   * distinct entities, by category. Nothing personal leaves this function.
   */
  async computeScope(id: string): Promise<TenantScope[]> {
    const row = await this.#row(id);
    const input = JSON.parse(row.input) as BreachInput;
    const candidates = input.tenants ?? (await this.#tenants.list()).map((t) => t.id);
    const scopes: TenantScope[] = [];
    for (const tenant of candidates) {
      const subjects = new Set<string>();
      const records = new Map<string, Set<string>>();
      for await (const entry of this.#audit.list(tenant, {
        ...(input.window ? { from: input.window.from, to: input.window.to } : {}),
        ...(input.suspectedPrincipal ? { actor: input.suspectedPrincipal } : {}),
      })) {
        if (entry.patientRef) subjects.add(entry.patientRef);
        if (entry.entity.type === 'Tenant' || entry.entity.type === 'Operation') continue;
        const set = records.get(entry.entity.type) ?? new Set<string>();
        set.add(entry.entity.id);
        records.set(entry.entity.type, set);
      }
      const recordsByCategory = Object.fromEntries([...records.entries()].map(([k, v]) => [k, v.size]));
      const total = Object.values(recordsByCategory).reduce((a, b) => a + b, 0);
      if (input.tenants || total > 0 || subjects.size > 0)
        scopes.push({ tenant, dataSubjects: subjects.size, records: total, recordsByCategory });
    }
    await this.#platform.updateEntity(
      { partitionKey: row.partitionKey, rowKey: row.rowKey, scope: JSON.stringify(scopes) },
      'Merge',
    );
    await this.timeline(id, 'scoped', `${scopes.length} tenant(s) affected`);
    return scopes;
  }

  /** Writes notification `seq` for a tenant in LabVault (idempotent per breach, tenant and seq). */
  async notify(id: string, tenant: string, seq: number): Promise<void> {
    const row = await this.#row(id);
    const partitionKey = tenantPartition(tenant, NOTICE_AREA);
    const rowKey = `notice~${id}~${padSeq(seq)}`;
    const recorded = () =>
      this.timeline(id, 'notified', `notification ${seq} in LabVault`, tenant, `notified~${tenant}~${seq}`);
    try {
      await this.#tenantData.getEntity(partitionKey, rowKey);
      return await recorded(); // sent already (a repeated activity): only its timeline entry may be missing
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const content = this.#content(row, tenant, seq);
    const notice: NoticeRow = {
      partitionKey,
      rowKey,
      breachId: id,
      seq,
      sentAt: this.#clock().toISOString(),
      content: JSON.stringify(content),
    };
    await this.#audit.commit(tenant, partitionKey, () => [['create', notice]], [
      auditEvent(
        'breach.notification',
        'C',
        { type: 'BreachNotification', id: `${id}-${seq}` },
        { actor: { type: 'operator', id: 'security-officer' }, correlationId: `breach-${id}` },
        { purpose: 'breach-notification', details: { seq, late: content.lateReason !== undefined } },
      ),
    ]);
    await recorded();
  }

  #content(row: BreachRow, tenant: string, seq: number): Record<string, unknown> {
    const input = JSON.parse(row.input) as BreachInput;
    const updates = (row.updates ? (JSON.parse(row.updates) as Record<string, unknown>[]) : []).slice(0, seq - 1);
    const latest = Object.assign({}, input, ...updates) as BreachInput & {
      moreToFollow?: boolean;
      lateReason?: string;
    };
    const scope = (row.scope ? (JSON.parse(row.scope) as TenantScope[]) : []).find((s) => s.tenant === tenant);
    const now = this.#clock().toISOString();
    const late = now > row.processorDeadline;
    return {
      breachId: row.id,
      sequence: seq,
      moreToFollow: latest.moreToFollow ?? seq === 1,
      awareAt: row.awareAt,
      detectedAt: input.detectedAt,
      nature: latest.nature,
      description: latest.description,
      dataCategories: latest.dataCategories,
      approximateDataSubjects: scope?.dataSubjects ?? 0,
      approximateRecords: scope?.records ?? 0,
      recordsByCategory: scope?.recordsByCategory ?? {},
      contactPoint: this.#config.contactPoint,
      likelyConsequences: latest.likelyConsequences,
      measures: latest.measures,
      // Art. 34(3)(a): data unintelligible to others if the keys were not exposed.
      dataEncrypted: true,
      keysExposed: input.keysExposed,
      processorDeadline: row.processorDeadline,
      controllerDeadline: row.controllerDeadline,
      ...(late
        ? { lateReason: latest.lateReason ?? `sent after the processor deadline (${row.processorDeadline})` }
        : {}),
    };
  }

  /** Registers a phased update (Art. 33(4)); returns the next sequence number. */
  async addUpdate(id: string, update: Record<string, unknown>): Promise<number> {
    // Updates of one breach do not contradict each other: one that meets another (or the
    // orchestration's scope) reads the record again and goes after it.
    for (let attempt = 1; ; attempt++) {
      const row = await this.#row(id);
      if (row.status !== 'open') throw conflict(`The breach is ${row.status}.`);
      const updates = row.updates ? (JSON.parse(row.updates) as Record<string, unknown>[]) : [];
      updates.push(update);
      if (!(await this.#changeRecord(row, { updates: JSON.stringify(updates) }))) {
        if (attempt < 10) continue;
        throw conflict('The breach is being changed by many at once; retry.');
      }
      await this.timeline(id, 'update-registered', `update ${updates.length + 1}`);
      return updates.length + 1;
    }
  }

  /**
   * Sets the tenant's webhook. Literal addresses, local names, other schemes and ports, and names
   * that resolve to non-public addresses are refused at once (422); a public name that does not
   * resolve now is accepted and checked again at every delivery. Returns the signing secret in the
   * Standard Webhooks form (`whsec_` + base64 of 32 random bytes), shown this once.
   */
  async setWebhook(tenant: string, url: string, meta: RequestMeta): Promise<string> {
    try {
      await resolveChecked(checkUrl(url, this.#outbound), this.#outbound);
    } catch (error) {
      if (!(error instanceof OutboundError)) throw error;
      if (error.reason !== 'dns')
        throw unprocessable(`The webhook URL is refused: ${error.message}.`, [
          { path: '/url', message: error.message },
        ]);
    }
    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    const partitionKey = tenantPartition(tenant, NOTICE_AREA);
    const encSecret = await this.#crypto.encryptJson({ tenant, record: 'breach-webhook', field: 'secret' }, secret);
    await this.#audit.commit(
      tenant,
      partitionKey,
      () => [['upsert', { partitionKey, rowKey: 'webhook', url, encSecret }, 'Replace']],
      [
        auditEvent('breach.webhook.set', 'U', { type: 'Webhook', id: 'breach' }, meta, {
          purpose: 'breach-notification',
        }),
      ],
    );
    return secret;
  }

  /** The webhook message of a notification or a reminder (the same message on every attempt). */
  async #message(
    id: string,
    tenant: string,
    message: DeliveryMessage,
  ): Promise<{ webhookId: string; type: string; data: Record<string, unknown> } | undefined> {
    const partitionKey = tenantPartition(tenant, NOTICE_AREA);
    let notice: NoticeRow;
    try {
      notice = await this.#tenantData.getEntity<NoticeRow>(partitionKey, `notice~${id}~${padSeq(message.seq)}`);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
    const notificationId = notificationIdOf(id, message.seq);
    const content = JSON.parse(notice.content) as Record<string, unknown>;
    const data: Record<string, unknown> =
      message.kind === 'notification'
        ? { notificationId, ...content }
        : {
            notificationId,
            breachId: id,
            sequence: message.seq,
            hoursSinceAwareness: message.hours ?? 0,
            text: `Reminder: breach notification ${notificationId} has not been acknowledged. Please acknowledge it (POST /api/breach-notifications/${notificationId}/acknowledgement).`,
            controllerDeadline: content.controllerDeadline,
          };
    // The same id on every attempt and re-send of one message, so a receiver can drop duplicates.
    const webhookId = `msg_${createHash('sha256')
      .update(`${id}|${tenant}|${message.kind}|${message.seq}|${message.hours ?? ''}`)
      .digest('hex')
      .slice(0, 26)}`;
    return { webhookId, type: message.kind === 'notification' ? 'breach.notification' : 'breach.reminder', data };
  }

  /**
   * Delivers one message to the tenant's webhook, signed as Standard Webhooks specifies:
   * `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 over
   * "{id}.{timestamp}.{body}">` with the secret's key. Records the attempt (status or cause, never
   * the secret); throws on failure so the durable delivery retries it.
   */
  async deliver(id: string, tenant: string, message: DeliveryMessage): Promise<'delivered' | 'no-webhook'> {
    const partitionKey = tenantPartition(tenant, NOTICE_AREA);
    let webhook: { url: string; encSecret: string };
    try {
      webhook = await this.#tenantData.getEntity<{ url: string; encSecret: string }>(partitionKey, 'webhook');
    } catch (error) {
      if (isNotFound(error)) return 'no-webhook';
      throw error;
    }
    const built = await this.#message(id, tenant, message);
    if (!built) throw new Error('the notification to deliver does not exist');
    const secret = await this.#crypto.decryptJson<string>(
      { tenant, record: 'breach-webhook', field: 'secret' },
      webhook.encSecret,
    );
    const timestamp = Math.floor(this.#clock().getTime() / 1000).toString();
    const body = JSON.stringify({
      type: built.type,
      timestamp: new Date(Number(timestamp) * 1000).toISOString(),
      data: built.data,
    });
    const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');
    const signature = createHmac('sha256', key).update(`${built.webhookId}.${timestamp}.${body}`).digest('base64');
    let status: number | undefined;
    let failure: string | undefined;
    try {
      // Through the guard: the URL is checked again now, the address it resolves to included.
      status = (
        await guardedPost(
          webhook.url,
          {
            headers: {
              'content-type': 'application/json',
              'webhook-id': built.webhookId,
              'webhook-timestamp': timestamp,
              'webhook-signature': `v1,${signature}`,
            },
            body,
          },
          this.#outbound,
        )
      ).status;
      if (status < 200 || status >= 300) failure = `http-${status}`;
    } catch (error) {
      failure = error instanceof OutboundError ? error.reason : 'connection';
    }
    const ok = failure === undefined;
    const at = this.#clock().toISOString();
    try {
      await this.#platform.createEntity({
        partitionKey: PARTITION(id),
        rowKey: `delivery~${tenant}~${at}~${randomBytes(4).toString('hex')}`,
        tenant,
        webhookId: built.webhookId,
        kind: message.kind,
        seq: message.seq,
        at,
        ok,
        ...(status !== undefined ? { httpStatus: status } : {}),
        ...(failure ? { error: failure } : {}),
      });
    } catch (error) {
      // The row key is new to this attempt: a conflict is the SDK's retry meeting the row its first
      // try wrote after that answer was lost. Recorded; failing here would deliver the message again.
      if (!isConflict(error)) throw error;
    }
    this.#logger.log(ok ? 'info' : 'warn', 'breach.delivery', {
      breachId: id,
      kind: message.kind,
      seq: message.seq,
      outcome: ok ? 'delivered' : 'failed',
      ...(failure ? { cause: failure } : {}),
    });
    if (!ok) throw new Error(`webhook delivery failed: ${failure}`);
    await this.timeline(id, 'webhook-delivered', `${message.kind} ${message.seq}`, tenant);
    return 'delivered';
  }

  /** Every retry of a delivery failed: recorded in the breach's timeline, and the security officers are told. */
  async deliveryFailed(id: string, tenant: string, message: DeliveryMessage): Promise<void> {
    await this.timeline(id, 'webhook-failed', `${message.kind} ${message.seq}: every attempt failed`, tenant);
    await this.#alerts.raise({
      kind: 'breach-delivery-failed',
      realm: tenant,
      count: 1,
      summary: `breach ${id}: the ${message.kind} ${message.seq} could not be delivered to ${tenant}'s webhook`,
    });
  }

  /** The latest notification of the breach for each given tenant (what a re-send sends again). */
  async latestNotifications(id: string, tenants?: readonly string[]): Promise<{ tenant: string; seq: number }[]> {
    const row = await this.#row(id);
    const scope = row.scope ? (JSON.parse(row.scope) as TenantScope[]).map((s) => s.tenant) : [];
    const chosen = tenants ?? scope;
    const unknown = chosen.filter((t) => !scope.includes(t));
    if (unknown.length > 0)
      throw unprocessable(
        'Not a tenant of this breach.',
        unknown.map((t) => ({ path: '/tenants', message: `${t} was not notified of this breach` })),
      );
    const out: { tenant: string; seq: number }[] = [];
    for (const tenant of chosen) {
      const seqs = (await this.notices(tenant)).filter((n) => n.breachId === id).map((n) => Number(n.sequence));
      if (seqs.length > 0) out.push({ tenant, seq: Math.max(...seqs) });
    }
    return out;
  }

  /**
   * The tenant acknowledges a notification (by the id GET /api/breach-notifications gives it), and
   * with it every earlier notification of the same breach. Returns the breach's id.
   */
  async acknowledge(tenant: string, notificationId: string, by: string, meta: RequestMeta): Promise<string> {
    const match = /^([0-9a-f]{24})-(\d{1,4})$/.exec(notificationId);
    if (!match) throw notFound('No such breach notification.');
    const [, id = '', seqText = ''] = match;
    const seq = Number(seqText);
    const partitionKey = tenantPartition(tenant, NOTICE_AREA);
    const filter = odata`PartitionKey eq ${partitionKey} and RowKey ge ${`notice~${id}~`} and RowKey lt ${`notice~${id}~~`}`;
    const notices: (NoticeRow & { etag: string })[] = [];
    for await (const n of this.#tenantData.listEntities<NoticeRow>({ queryOptions: { filter } }))
      notices.push(n as NoticeRow & { etag: string });
    if (!notices.some((n) => n.seq === seq)) throw notFound('No such breach notification.');
    const now = this.#clock().toISOString();
    const open = notices.filter((n) => !n.acknowledgedAt && n.seq <= seq);
    if (open.length > 0) {
      await this.#audit.commit(
        tenant,
        partitionKey,
        () =>
          open.map((n) => [
            'update',
            { partitionKey, rowKey: n.rowKey, acknowledgedAt: now, acknowledgedBy: by },
            'Merge',
          ]),
        [
          auditEvent('breach.acknowledge', 'U', { type: 'BreachNotification', id: notificationId }, meta, {
            purpose: 'breach-notification',
          }),
        ],
      );
      await this.timeline(id, 'acknowledged', `notification ${seq} by ${by}`, tenant);
    }
    return id;
  }

  async notices(tenant: string): Promise<Record<string, unknown>[]> {
    const filter = odata`PartitionKey eq ${tenantPartition(tenant, NOTICE_AREA)} and RowKey ge ${'notice~'} and RowKey lt ${'notice~~'}`;
    const result: Record<string, unknown>[] = [];
    for await (const n of this.#tenantData.listEntities<NoticeRow>({ queryOptions: { filter } })) {
      const reminded = n as NoticeRow & { reminders?: number; lastReminderAt?: string };
      result.push({
        id: notificationIdOf(n.breachId, n.seq),
        breachId: n.breachId,
        sequence: n.seq,
        sentAt: n.sentAt,
        acknowledgedAt: n.acknowledgedAt ?? null,
        reminders: reminded.reminders ?? 0,
        ...(reminded.lastReminderAt ? { lastReminderAt: reminded.lastReminderAt } : {}),
        content: JSON.parse(n.content) as unknown,
      });
    }
    return result;
  }

  /**
   * A reminder goes to the tenant (its notices show it, and it is audited in its log; the caller
   * delivers it to the webhook); an escalation goes to the vendor's security officers as an alert.
   * Returns the sequence number of the notification a reminder is about (undefined: none to remind of).
   */
  async remind(
    id: string,
    tenant: string,
    kind: 'reminder' | 'escalation',
    hours: number,
  ): Promise<number | undefined> {
    let remindedOf: number | undefined;
    if (kind === 'escalation') {
      // Skipped when an earlier run of this step got as far as its timeline entry (at least once, never lost).
      if (!(await this.#inTimeline(id, `escalation~${tenant}~${hours}`)))
        await this.#alerts.raise({
          kind: 'breach-escalation',
          realm: tenant,
          count: 1,
          summary: `breach ${id}: ${tenant} has not acknowledged after ${hours} h`,
        });
    } else {
      const partitionKey = tenantPartition(tenant, NOTICE_AREA);
      const filter = odata`PartitionKey eq ${partitionKey} and RowKey ge ${`notice~${id}~`} and RowKey lt ${`notice~${id}~~`}`;
      let latest: (NoticeRow & { reminders?: number; reminderHours?: string }) | undefined;
      for await (const n of this.#tenantData.listEntities<NoticeRow & { reminders?: number; reminderHours?: string }>({
        queryOptions: { filter },
      }))
        latest = n;
      if (latest && !latest.acknowledgedAt) {
        const row = latest;
        remindedOf = row.seq;
        // Counted once per milestone, however often the step runs (the row's ETag guards a race).
        const done = (row.reminderHours ?? '').split(',').filter(Boolean);
        if (done.includes(String(hours))) return await this.#remindedOnce(id, tenant, kind, hours, remindedOf);
        const etag = (row as { etag?: string }).etag;
        await this.#audit.commit(
          tenant,
          partitionKey,
          () => [
            [
              'update',
              {
                partitionKey,
                rowKey: row.rowKey,
                reminders: (row.reminders ?? 0) + 1,
                reminderHours: [...done, String(hours)].join(','),
                lastReminderAt: this.#clock().toISOString(),
              },
              'Merge',
              etag ? { etag } : undefined,
            ] satisfies TransactionAction,
          ],
          [
            auditEvent(
              'breach.reminder',
              'E',
              { type: 'Breach', id },
              { actor: { type: 'system', id: 'breach-clock' }, correlationId: `breach-${id}` },
              { purpose: 'breach-notification', details: { hours } },
            ),
          ],
        );
      }
    }
    return this.#remindedOnce(id, tenant, kind, hours, remindedOf);
  }

  async #inTimeline(id: string, once: string): Promise<boolean> {
    try {
      await this.#platform.getEntity(PARTITION(id), `timeline~once~${once}`);
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  async #remindedOnce(
    id: string,
    tenant: string,
    kind: 'reminder' | 'escalation',
    hours: number,
    remindedOf: number | undefined,
  ): Promise<number | undefined> {
    await this.timeline(
      id,
      kind,
      `${kind} after ${hours} h without acknowledgement`,
      tenant,
      `${kind}~${tenant}~${hours}`,
    );
    return remindedOf;
  }

  /**
   * Reminds the officers that the internal analysis is missing. `dueAt` names the reminder: repeated
   * after a crash, its timeline entry is written once (the alert may come twice: better than none).
   */
  async remindAnalysis(id: string, dueAt?: string): Promise<void> {
    await this.#alerts.raise({
      kind: 'breach-analysis-due',
      count: 1,
      summary: `breach ${id}: the internal analysis is still missing`,
    });
    await this.timeline(
      id,
      'analysis-reminder',
      'internal analysis still missing',
      undefined,
      dueAt ? `analysis-reminder~${dueAt}` : undefined,
    );
  }

  async recordAnalysis(
    id: string,
    analysis: { rootCause: string; measures: string; lessons?: string; closed: boolean },
  ): Promise<void> {
    const row = await this.#row(id);
    if (row.status === 'closed') throw conflict('The breach is closed.');
    await this.#platform.updateEntity(
      {
        partitionKey: row.partitionKey,
        rowKey: row.rowKey,
        analysis: JSON.stringify({ ...analysis, at: this.#clock().toISOString() }),
        ...(analysis.closed ? { status: 'closed', closedAt: this.#clock().toISOString() } : {}),
      },
      'Merge',
    );
    await this.timeline(
      id,
      analysis.closed ? 'closed' : 'analysis-recorded',
      analysis.closed ? 'closed with the internal analysis' : 'analysis recorded',
    );
  }

  /** Records the supervisory authority's notification (replacing an earlier record: a corrected reference). */
  async recordAuthorityNotification(
    id: string,
    notification: { authority: string; reference: string; notifiedAt: string },
  ): Promise<void> {
    const row = await this.#row(id);
    if (row.status === 'draft') throw conflict('The breach is a draft: confirm it first.');
    await this.#platform.updateEntity(
      {
        partitionKey: row.partitionKey,
        rowKey: row.rowKey,
        authority: JSON.stringify({ ...notification, recordedAt: this.#clock().toISOString() }),
      },
      'Merge',
    );
    await this.timeline(id, 'authority-notified', `${notification.authority}: ${notification.reference}`);
  }

  /**
   * Adds an entry to the breach's timeline. With `once`, the entry is written at most once under
   * that key, so a step the durable runtime repeats after a crash does not record its event twice.
   */
  async timeline(id: string, event: string, detail: string, tenant?: string, once?: string): Promise<void> {
    const at = this.#clock().toISOString();
    const rowKey = once ? `timeline~once~${once}` : `timeline~${at}~${randomBytes(6).toString('hex')}`;
    const entry = { partitionKey: PARTITION(id), rowKey, at, event, detail, ...(tenant ? { tenant } : {}) };
    try {
      await this.#platform.createEntity(entry);
    } catch (error) {
      if (once && isConflict(error)) return; // recorded by an earlier run of the same step
      // A new row key: a row there already is this entry, its answer lost.
      if (!(await landedAlready(this.#platform, entry, error))) throw error;
    }
    this.#logger.log('info', 'breach.timeline', { breachId: id, event });
  }

  async get(id: string): Promise<Record<string, unknown>> {
    const row = await this.#row(id);
    const timeline: Record<string, unknown>[] = [];
    const deliveries: Record<string, unknown>[] = [];
    for await (const r of this.#platform.listEntities<Record<string, unknown>>({
      queryOptions: { filter: odata`PartitionKey eq ${row.partitionKey}` },
    })) {
      const key = r.rowKey as string;
      if (key.startsWith('timeline~'))
        timeline.push({ at: r.at, event: r.event, detail: r.detail, ...(r.tenant ? { tenant: r.tenant } : {}) });
      if (key.startsWith('delivery~')) {
        deliveries.push({
          tenant: r.tenant,
          kind: r.kind ?? 'notification',
          sequence: r.seq,
          ...(r.webhookId ? { webhookId: r.webhookId } : {}),
          at: r.at,
          ok: r.ok,
          ...(r.httpStatus !== undefined ? { httpStatus: r.httpStatus } : {}),
          ...(r.error ? { error: r.error } : {}),
        });
      }
    }
    const scope = row.scope ? (JSON.parse(row.scope) as TenantScope[]) : [];
    const tenants = [];
    for (const s of scope) {
      const notices = (await this.notices(s.tenant)).filter((n) => n.breachId === row.id);
      tenants.push({
        ...s,
        notifications: notices.length,
        acknowledgedAt: notices.find((n) => n.acknowledgedAt)?.acknowledgedAt ?? null,
      });
    }
    return {
      id: row.id,
      status: row.status,
      ...(JSON.parse(row.input) as object),
      awareAt: row.awareAt,
      deadlines: { processor: row.processorDeadline, controller: row.controllerDeadline },
      tenants,
      updates: row.updates ? (JSON.parse(row.updates) as unknown[]) : [],
      ...(row.analysis ? { analysis: JSON.parse(row.analysis) as unknown } : {}),
      ...(row.decision ? { decision: JSON.parse(row.decision) as unknown } : {}),
      ...(row.authority ? { authorityNotification: JSON.parse(row.authority) as unknown } : {}),
      ...(row.fromAlert ? { fromAlert: row.fromAlert } : {}),
      timeline: timeline.sort((a, b) => String(a.at).localeCompare(String(b.at))),
      deliveries,
    };
  }

  async list(): Promise<Record<string, unknown>[]> {
    const result: Record<string, unknown>[] = [];
    const filter = odata`PartitionKey ge ${'breach~'} and PartitionKey lt ${'breach~~'} and RowKey eq ${'record'}`;
    for await (const row of this.#platform.listEntities<BreachRow>({ queryOptions: { filter } })) {
      const input = JSON.parse(row.input) as BreachInput;
      result.push({
        id: row.id,
        status: row.status,
        awareAt: row.awareAt,
        description: input.description,
        deadlines: { processor: row.processorDeadline, controller: row.controllerDeadline },
      });
    }
    return result.sort((a, b) => String(b.awareAt).localeCompare(String(a.awareAt)));
  }

  async #row(id: string): Promise<BreachRow> {
    if (!/^[0-9a-f]{24}$/.test(id)) throw notFound('No such breach.');
    try {
      return await this.#platform.getEntity<BreachRow>(PARTITION(id), 'record');
    } catch (error) {
      if (isNotFound(error)) throw notFound('No such breach.');
      throw error;
    }
  }
}
