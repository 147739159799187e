import { logs, SeverityNumber } from '@opentelemetry/api-logs';

/**
 * Structured logging that can only carry what is safe to log: the fields are typed as ids, codes,
 * numbers and flags, and every string is cut and stripped of control characters (log injection).
 * Nothing here accepts a request body, an entity or an error object.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  log(level: LogLevel, event: string, fields?: LogFields): void;
}

export type LogSink = (line: string) => void;

const MAX_FIELD = 200;
const SEVERITY: Record<LogLevel, SeverityNumber> = {
  debug: SeverityNumber.DEBUG,
  info: SeverityNumber.INFO,
  warn: SeverityNumber.WARN,
  error: SeverityNumber.ERROR,
};

function clean(value: string): string {
  // eslint-friendly: the control range is the point of this pattern.
  return value.replace(/[\p{Cc}\p{Cf}]/gu, '?').slice(0, MAX_FIELD);
}

export function createLogger(
  sink: LogSink = (line) => process.stdout.write(line + '\n'),
  minLevel: LogLevel = 'info',
): Logger {
  const order: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
  return {
    log(level, event, fields = {}) {
      if (order[level] < order[minLevel]) return;
      const safe: Record<string, string | number | boolean> = {};
      for (const [key, value] of Object.entries(fields)) {
        if (value === undefined) continue;
        safe[clean(key)] = typeof value === 'string' ? clean(value) : value;
      }
      sink(JSON.stringify({ at: new Date().toISOString(), level, event: clean(event), ...safe }));
      // The same record through OpenTelemetry (a no-op until the app's entry starts telemetry).
      logs.getLogger('labvault').emit({
        severityNumber: SEVERITY[level],
        severityText: level,
        body: clean(event),
        attributes: safe,
      });
    },
  };
}

/** The safe description of an unexpected error: its class and code, never its message. */
export function errorFields(error: unknown): LogFields {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const status = (error as { statusCode?: unknown }).statusCode;
    return {
      errorName: error.name,
      ...(typeof code === 'string' ? { errorCode: code } : {}),
      ...(typeof status === 'number' ? { errorStatus: status } : {}),
    };
  }
  return { errorName: typeof error };
}
