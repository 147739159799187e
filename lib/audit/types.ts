/** The row of each audit stream that holds its last sequence number and hash. */
export const AUDIT_HEAD_ROW = 'audit~head';

/** FHIR AuditEvent action codes: create, read, update, delete, execute. */
export type AuditAction = 'C' | 'R' | 'U' | 'D' | 'E';
export type AuditOutcome = 'success' | 'failure';
type ActorType = 'integration' | 'user' | 'operator' | 'system';

export interface AuditActor {
  type: ActorType;
  id: string;
  /** Network address of the requester, when there is one. */
  address?: string;
}

/**
 * What happened, to which entity, by whom and why. Entities are references (type + id), never
 * content; a patient appears only as a keyed pseudonym.
 */
export interface AuditEventInput {
  event: string;
  action: AuditAction;
  outcome: AuditOutcome;
  actor: AuditActor;
  entity: { type: string; id: string };
  patientRef?: string;
  purpose?: string;
  correlationId?: string;
  /** Small, non-personal facts (counts, status codes, field names). */
  details?: Record<string, string | number | boolean>;
}

/** Who acts and in which request: what every audited domain call is given. */
export interface RequestMeta {
  actor: AuditActor;
  correlationId: string;
}

export interface AuditEntry extends AuditEventInput {
  tenant: string;
  stream: string;
  seq: number;
  at: string;
  prevHash: string;
  hash: string;
}

export interface ChainBreak {
  stream: string;
  seq: number;
  reason:
    | 'hash-mismatch'
    | 'previous-hash-mismatch'
    | 'sequence-gap'
    | 'head-mismatch'
    | 'missing-head'
    | 'anchor-mismatch'
    | 'anchored-entry-missing';
}

export interface VerifyResult {
  valid: boolean;
  entries: number;
  streams: number;
  firstBrokenAt?: ChainBreak;
  /** The write-once anchors checked (where they are kept). */
  anchors?: { lines: number; positions: number; lastAnchoredAt?: string; unreadableLines?: number };
}
