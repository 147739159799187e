import type { PipelinePolicy, PipelineRequest, PipelineResponse } from '@azure/core-rest-pipeline';

/** Which endpoint served the last read: what GET /api/health reports. */
export interface ReadEndpointState {
  lastRead: 'primary' | 'secondary';
  at?: string;
  /** After a failed primary read, reads go straight to the secondary until then (ms since epoch). */
  primaryDownUntil?: number;
}

/** How long reads skip a primary that just failed before trying it again. */
const PRIMARY_RETRY_AFTER_MS = 15_000;

const READS = new Set(['GET', 'HEAD']);

/**
 * Reads go to the primary; when it fails (network error, 5xx) or does not answer within
 * `timeoutMs`, the same read goes to the read-access secondary (RA-GZRS). Writes never do: a
 * write to the secondary is impossible, and silently losing it would be worse than an error.
 */
export function secondaryReadPolicy(
  secondaryOrigin: string,
  state: ReadEndpointState,
  timeoutMs = 2000,
): PipelinePolicy {
  const secondary = new URL(secondaryOrigin);
  return {
    name: 'labvaultSecondaryReads',
    async sendRequest(request: PipelineRequest, next): Promise<PipelineResponse> {
      if (!READS.has(request.method)) return next(request);
      const caller = request.abortSignal;
      if ((state.primaryDownUntil ?? 0) > Date.now()) return toSecondary(request, caller);
      const primaryAttempt = new AbortController();
      const timer = setTimeout(() => primaryAttempt.abort(), timeoutMs);
      const onCallerAbort = (): void => primaryAttempt.abort();
      caller?.addEventListener('abort', onCallerAbort);
      try {
        request.abortSignal = primaryAttempt.signal;
        const response = await next(request);
        if (response.status < 500) {
          state.lastRead = 'primary';
          state.at = new Date().toISOString();
          state.primaryDownUntil = undefined;
          return response;
        }
      } catch (error) {
        // An answer of the primary (404, 409, …) is an answer: only silence or a 5xx moves reads.
        const status = (error as { statusCode?: number }).statusCode;
        if (caller?.aborted || (status !== undefined && status < 500)) throw error;
      } finally {
        clearTimeout(timer);
        caller?.removeEventListener('abort', onCallerAbort);
      }
      state.primaryDownUntil = Date.now() + PRIMARY_RETRY_AFTER_MS;
      return toSecondary(request, caller);

      async function toSecondary(
        req: PipelineRequest,
        signal: PipelineRequest['abortSignal'],
      ): Promise<PipelineResponse> {
        const url = new URL(req.url);
        url.protocol = secondary.protocol;
        url.host = secondary.host;
        req.url = url.toString();
        req.abortSignal = signal;
        const response = await next(req);
        state.lastRead = 'secondary';
        state.at = new Date().toISOString();
        return response;
      }
    },
  };
}
