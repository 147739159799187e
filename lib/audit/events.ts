import type { AuditAction, AuditEventInput, AuditOutcome, RequestMeta } from './types.js';

/**
 * An audit event: what happened (`event`, a FHIR action code) to which entity, by whom and in
 * which request (`meta`), and why. Entities are references, never content.
 */
export function auditEvent(
  event: string,
  action: AuditAction,
  entity: AuditEventInput['entity'],
  meta: { actor: RequestMeta['actor']; correlationId?: string | undefined },
  extras: { outcome?: AuditOutcome; purpose?: string; patientRef?: string; details?: AuditEventInput['details'] } = {},
): AuditEventInput {
  const { outcome = 'success', ...rest } = extras;
  return {
    event,
    action,
    outcome,
    actor: meta.actor,
    entity,
    ...(meta.correlationId !== undefined ? { correlationId: meta.correlationId } : {}),
    ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
  };
}
