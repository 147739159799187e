import { createHmac, randomBytes } from 'node:crypto';
import { odata, type TableClient } from '@azure/data-tables';
import type { AuditLog } from '../audit/audit-log.js';
import type { RequestMeta } from '../audit/types.js';
import type { AppConfig } from '../config.js';
import type { TenantCrypto } from '../crypto/field-cipher.js';
import { conflict, notFound, unprocessable } from '../http/problem.js';
import type { SecurityAlertService } from '../identity/security-alerts.js';
import type { Logger } from '../observability/logger.js';
import { isNotFound } from '../storage/errors.js';
import { padSeq, tenantPartition } from '../storage/keys.js';
import type { TenantService } from '../tenants/tenants.js';

export type BreachNature = 'confidentiality' | 'integrity' | 'availability';
export type BreachStatus = 'draft' | 'open' | 'closed' | 'not-notified';

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
}

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
  fromAlert?: string;
  closedAt?: string;
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
  readonly #fetch: typeof fetch;

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
    fetch?: typeof fetch;
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
    this.#fetch = options.fetch ?? fetch;
  }

  async register(input: BreachInput, options: { draft?: boolean; fromAlert?: string } = {}): Promise<{ id: string; timing: BreachTiming }> {
    for (const tenant of input.tenants ?? []) if (!(await this.#tenants.get(tenant))) throw unprocessable(`No tenant "${tenant}".`, [{ path: '/tenants', message: `unknown tenant ${tenant}` }]);
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
    await this.#platform.createEntity(row);
    await this.timeline(id, options.draft ? 'draft-created' : 'registered', options.fromAlert ? `from alert ${options.fromAlert}` : 'reported by a security officer');
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
    await this.#platform.updateEntity({ partitionKey: row.partitionKey, rowKey: row.rowKey, status: 'open' }, 'Merge', { etag: (row as BreachRow & { etag: string }).etag });
    await this.timeline(id, 'confirmed', 'draft confirmed for notification');
    return this.timingOf(row);
  }

  /** Documents a decision not to notify, with its reasoning (Art. 33(5)). */
  async decideNotToNotify(id: string, reasoning: string): Promise<void> {
    const row = await this.#row(id);
    if (row.status !== 'draft') throw conflict(`The breach is ${row.status}; only drafts can be closed without notification.`);
    await this.#platform.updateEntity(
      { partitionKey: row.partitionKey, rowKey: row.rowKey, status: 'not-notified', decision: JSON.stringify({ notify: false, reasoning, at: this.#clock().toISOString() }), closedAt: this.#clock().toISOString() },
      'Merge',
    );
    await this.timeline(id, 'not-notified', reasoning);
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
      if (input.tenants || total > 0 || subjects.size > 0) scopes.push({ tenant, dataSubjects: subjects.size, records: total, recordsByCategory });
    }
    await this.#platform.updateEntity({ partitionKey: row.partitionKey, rowKey: row.rowKey, scope: JSON.stringify(scopes) }, 'Merge');
    await this.timeline(id, 'scoped', `${scopes.length} tenant(s) affected`);
    return scopes;
  }

  /** Writes notification `seq` for a tenant in LabVault (idempotent per breach, tenant and seq). */
  async notify(id: string, tenant: string, seq: number): Promise<void> {
    const row = await this.#row(id);
    const partitionKey = tenantPartition(tenant, NOTICE_AREA);
    const rowKey = `notice~${id}~${padSeq(seq)}`;
    try {
      await this.#tenantData.getEntity(partitionKey, rowKey);
      return; // sent already (a retried activity)
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const content = this.#content(row, tenant, seq);
    const notice: NoticeRow = { partitionKey, rowKey, breachId: id, seq, sentAt: this.#clock().toISOString(), content: JSON.stringify(content) };
    await this.#audit.commit(tenant, partitionKey, () => [['create', notice]], [
      {
        event: 'breach.notification',
        action: 'C',
        outcome: 'success',
        actor: { type: 'operator', id: 'security-officer' },
        entity: { type: 'BreachNotification', id: `${id}-${seq}` },
        purpose: 'breach-notification',
        correlationId: `breach-${id}`,
        details: { seq, late: content.lateReason !== undefined },
      },
    ]);
    await this.timeline(id, 'notified', `notification ${seq} in LabVault`, tenant);
  }

  #content(row: BreachRow, tenant: string, seq: number): Record<string, unknown> {
    const input = JSON.parse(row.input) as BreachInput;
    const updates = (row.updates ? (JSON.parse(row.updates) as Record<string, unknown>[]) : []).slice(0, seq - 1);
    const latest = Object.assign({}, input, ...updates) as BreachInput & { moreToFollow?: boolean; lateReason?: string };
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
      ...(late ? { lateReason: latest.lateReason ?? `sent after the processor deadline (${row.processorDeadline})` } : {}),
    };
  }

  /** Registers a phased update (Art. 33(4)); returns the next sequence number. */
  async addUpdate(id: string, update: Record<string, unknown>): Promise<number> {
    const row = await this.#row(id);
    if (row.status !== 'open') throw conflict(`The breach is ${row.status}.`);
    const updates = row.updates ? (JSON.parse(row.updates) as Record<string, unknown>[]) : [];
    updates.push(update);
    await this.#platform.updateEntity({ partitionKey: row.partitionKey, rowKey: row.rowKey, updates: JSON.stringify(updates) }, 'Merge', { etag: (row as BreachRow & { etag: string }).etag });
    await this.timeline(id, 'update-registered', `update ${updates.length + 1}`);
    return updates.length + 1;
  }

  async setWebhook(tenant: string, url: string, meta: RequestMeta): Promise<string> {
    const parsed = new URL(url);
    const local = parsed.hostname === '127.0.0.1' || parsed.hostname === 'localhost';
    if (parsed.protocol !== 'https:' && !local) throw unprocessable('Webhooks need https.', [{ path: '/url', message: 'https only' }]);
    const secret = randomBytes(32).toString('base64url');
    const partitionKey = tenantPartition(tenant, NOTICE_AREA);
    const encSecret = await this.#crypto.encryptJson({ tenant, record: 'breach-webhook', field: 'secret' }, secret);
    await this.#audit.commit(tenant, partitionKey, () => [['upsert', { partitionKey, rowKey: 'webhook', url, encSecret }, 'Replace']], [
      { event: 'breach.webhook.set', action: 'U', outcome: 'success', actor: meta.actor, entity: { type: 'Webhook', id: 'breach' }, purpose: 'breach-notification', correlationId: meta.correlationId },
    ]);
    return secret;
  }

  /**
   * Delivers notification `seq` to the tenant's webhook, signed with HMAC-SHA256 over
   * "{timestamp}.{body}". Records the attempt; throws on failure so the orchestration retries.
   */
  async deliver(id: string, tenant: string, seq: number): Promise<'delivered' | 'no-webhook'> {
    const partitionKey = tenantPartition(tenant, NOTICE_AREA);
    let webhook: { url: string; encSecret: string };
    try {
      webhook = await this.#tenantData.getEntity<{ url: string; encSecret: string }>(partitionKey, 'webhook');
    } catch (error) {
      if (isNotFound(error)) return 'no-webhook';
      throw error;
    }
    const notice = await this.#tenantData.getEntity<NoticeRow>(partitionKey, `notice~${id}~${padSeq(seq)}`);
    const secret = await this.#crypto.decryptJson<string>({ tenant, record: 'breach-webhook', field: 'secret' }, webhook.encSecret);
    const body = notice.content;
    const timestamp = Math.floor(this.#clock().getTime() / 1000).toString();
    const signature = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
    const attempt = randomBytes(4).toString('hex');
    let status: number | undefined;
    try {
      const response = await this.#fetch(webhook.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-labvault-timestamp': timestamp, 'x-labvault-signature': `sha256=${signature}`, 'x-labvault-breach': id },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      status = response.status;
    } catch {
      status = undefined;
    }
    const ok = status !== undefined && status >= 200 && status < 300;
    await this.#platform.createEntity({
      partitionKey: PARTITION(id),
      rowKey: `delivery~${tenant}~${padSeq(seq)}~${this.#clock().toISOString()}~${attempt}`,
      tenant,
      seq,
      at: this.#clock().toISOString(),
      ok,
      ...(status !== undefined ? { httpStatus: status } : { error: 'unreachable' }),
    });
    if (!ok) throw new Error(`webhook answered ${status ?? 'nothing'}`);
    await this.timeline(id, 'webhook-delivered', `notification ${seq}`, tenant);
    return 'delivered';
  }

  async acknowledge(tenant: string, id: string, by: string, meta: RequestMeta): Promise<void> {
    const partitionKey = tenantPartition(tenant, NOTICE_AREA);
    const filter = odata`PartitionKey eq ${partitionKey} and RowKey ge ${`notice~${id}~`} and RowKey lt ${`notice~${id}~~`}`;
    const notices: (NoticeRow & { etag: string })[] = [];
    for await (const n of this.#tenantData.listEntities<NoticeRow>({ queryOptions: { filter } })) notices.push(n as NoticeRow & { etag: string });
    if (notices.length === 0) throw notFound('No such breach notification.');
    const now = this.#clock().toISOString();
    await this.#audit.commit(
      tenant,
      partitionKey,
      () => notices.filter((n) => !n.acknowledgedAt).map((n) => ['update', { partitionKey, rowKey: n.rowKey, acknowledgedAt: now, acknowledgedBy: by }, 'Merge']),
      [{ event: 'breach.acknowledge', action: 'U', outcome: 'success', actor: meta.actor, entity: { type: 'Breach', id }, purpose: 'breach-notification', correlationId: meta.correlationId }],
    );
    await this.timeline(id, 'acknowledged', `by ${by}`, tenant);
  }

  async notices(tenant: string): Promise<Record<string, unknown>[]> {
    const filter = odata`PartitionKey eq ${tenantPartition(tenant, NOTICE_AREA)} and RowKey ge ${'notice~'} and RowKey lt ${'notice~~'}`;
    const result: Record<string, unknown>[] = [];
    for await (const n of this.#tenantData.listEntities<NoticeRow>({ queryOptions: { filter } })) {
      const reminded = n as NoticeRow & { reminders?: number; lastReminderAt?: string };
      result.push({
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
   * A reminder goes to the tenant (its notices show it, and it is audited in its log); an escalation
   * goes to the vendor's security officers as an alert.
   */
  async remind(id: string, tenant: string, kind: 'reminder' | 'escalation', hours: number): Promise<void> {
    if (kind === 'escalation') {
      await this.#alerts.raise({ kind: 'breach-escalation', realm: tenant, count: 1, summary: `breach ${id}: ${tenant} has not acknowledged after ${hours} h` });
    } else {
      const partitionKey = tenantPartition(tenant, NOTICE_AREA);
      const filter = odata`PartitionKey eq ${partitionKey} and RowKey ge ${`notice~${id}~`} and RowKey lt ${`notice~${id}~~`}`;
      let latest: (NoticeRow & { reminders?: number }) | undefined;
      for await (const n of this.#tenantData.listEntities<NoticeRow & { reminders?: number }>({ queryOptions: { filter } })) latest = n;
      if (latest && !latest.acknowledgedAt) {
        const row = latest;
        await this.#audit.commit(tenant, partitionKey, () => [['update', { partitionKey, rowKey: row.rowKey, reminders: (row.reminders ?? 0) + 1, lastReminderAt: this.#clock().toISOString() }, 'Merge']], [
          { event: 'breach.reminder', action: 'E', outcome: 'success', actor: { type: 'system', id: 'breach-clock' }, entity: { type: 'Breach', id }, purpose: 'breach-notification', correlationId: `breach-${id}`, details: { hours } },
        ]);
      }
    }
    await this.timeline(id, kind, `${kind} after ${hours} h without acknowledgement`, tenant);
  }

  async remindAnalysis(id: string): Promise<void> {
    await this.#alerts.raise({ kind: 'breach-analysis-due', count: 1, summary: `breach ${id}: the internal analysis is still missing` });
    await this.timeline(id, 'analysis-reminder', 'internal analysis still missing');
  }

  async recordAnalysis(id: string, analysis: { rootCause: string; measures: string; lessons?: string; closed: boolean }): Promise<void> {
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
    await this.timeline(id, analysis.closed ? 'closed' : 'analysis-recorded', analysis.closed ? 'closed with the internal analysis' : 'analysis recorded');
  }

  async timeline(id: string, event: string, detail: string, tenant?: string): Promise<void> {
    const at = this.#clock().toISOString();
    await this.#platform.createEntity({ partitionKey: PARTITION(id), rowKey: `timeline~${at}~${randomBytes(3).toString('hex')}`, at, event, detail, ...(tenant ? { tenant } : {}) });
    this.#logger.log('info', 'breach.timeline', { breachId: id, event });
  }

  async get(id: string): Promise<Record<string, unknown>> {
    const row = await this.#row(id);
    const timeline: Record<string, unknown>[] = [];
    const deliveries: Record<string, unknown>[] = [];
    for await (const r of this.#platform.listEntities<Record<string, unknown>>({ queryOptions: { filter: odata`PartitionKey eq ${row.partitionKey}` } })) {
      const key = r.rowKey as string;
      if (key.startsWith('timeline~')) timeline.push({ at: r.at, event: r.event, detail: r.detail, ...(r.tenant ? { tenant: r.tenant } : {}) });
      if (key.startsWith('delivery~')) deliveries.push({ tenant: r.tenant, sequence: r.seq, at: r.at, ok: r.ok, ...(r.httpStatus ? { httpStatus: r.httpStatus } : { error: r.error }) });
    }
    const scope = row.scope ? (JSON.parse(row.scope) as TenantScope[]) : [];
    const tenants = [];
    for (const s of scope) {
      const notices = (await this.notices(s.tenant)).filter((n) => n.breachId === row.id);
      tenants.push({ ...s, notifications: notices.length, acknowledgedAt: notices.find((n) => n.acknowledgedAt)?.acknowledgedAt ?? null });
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
      result.push({ id: row.id, status: row.status, awareAt: row.awareAt, description: input.description, deadlines: { processor: row.processorDeadline, controller: row.controllerDeadline } });
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
