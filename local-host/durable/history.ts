/**
 * The out-of-proc history the Durable extension hands the durable-functions SDK: event objects with
 * PascalCase fields, `EventType` numbers as in DurableTask.Core's EventType enum.
 */
export const EventType = {
  ExecutionStarted: 0,
  ExecutionCompleted: 1,
  ExecutionFailed: 2,
  ExecutionTerminated: 3,
  TaskScheduled: 4,
  TaskCompleted: 5,
  TaskFailed: 6,
  SubOrchestrationInstanceCreated: 7,
  SubOrchestrationInstanceCompleted: 8,
  SubOrchestrationInstanceFailed: 9,
  TimerCreated: 10,
  TimerFired: 11,
  OrchestratorStarted: 12,
  OrchestratorCompleted: 13,
  EventSent: 14,
  EventRaised: 15,
  ContinueAsNew: 16,
  ExecutionSuspended: 19,
  ExecutionResumed: 20,
} as const;

export const EVENT_TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(EventType).map(([name, value]) => [value, name]),
);

export interface HistoryEvent {
  EventType: number;
  EventId: number;
  Timestamp: string;
  IsPlayed?: boolean;
  Name?: string;
  Input?: string;
  Result?: string;
  Reason?: string;
  Details?: string;
  TaskScheduledId?: number;
  TimerId?: number;
  FireAt?: string;
  InstanceId?: string;
  OrchestrationStatus?: string;
  /** The queue message that delivered the event (deduplication of redeliveries). */
  MessageId?: string;
}

export type RuntimeStatus =
  'Pending' | 'Running' | 'Completed' | 'ContinuedAsNew' | 'Failed' | 'Terminated' | 'Suspended';
export const TERMINAL: ReadonlySet<RuntimeStatus> = new Set(['Completed', 'Failed', 'Terminated']);

/** Ids of the tasks history has recorded as scheduled (activities, timers, sub-orchestrations). */
export function scheduledIds(history: readonly HistoryEvent[]): Set<number> {
  const ids = new Set<number>();
  for (const e of history) {
    if (
      e.EventType === EventType.TaskScheduled ||
      e.EventType === EventType.TimerCreated ||
      e.EventType === EventType.SubOrchestrationInstanceCreated
    )
      ids.add(e.EventId);
  }
  return ids;
}

/** True when history already holds the outcome this event would record (a redelivered message). */
export function isDuplicate(history: readonly HistoryEvent[], event: HistoryEvent): boolean {
  return history.some((e) => {
    if (event.MessageId !== undefined && e.MessageId === event.MessageId) return true;
    switch (event.EventType) {
      case EventType.TaskCompleted:
      case EventType.TaskFailed:
        return (
          (e.EventType === EventType.TaskCompleted || e.EventType === EventType.TaskFailed) &&
          e.TaskScheduledId === event.TaskScheduledId
        );
      case EventType.SubOrchestrationInstanceCompleted:
      case EventType.SubOrchestrationInstanceFailed:
        return (
          (e.EventType === EventType.SubOrchestrationInstanceCompleted ||
            e.EventType === EventType.SubOrchestrationInstanceFailed) &&
          e.TaskScheduledId === event.TaskScheduledId
        );
      case EventType.TimerFired:
        return e.EventType === EventType.TimerFired && e.TimerId === event.TimerId;
      case EventType.ExecutionStarted:
        return e.EventType === EventType.ExecutionStarted;
      default:
        return false;
    }
  });
}
