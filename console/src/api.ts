// The console's one way to call the API. The access token lives in this module's memory only:
// never in localStorage, a cookie or a URL, so closing the tab ends the session in the console.

export interface Problem {
  status: number;
  title: string;
  detail?: string;
  errors?: { path: string; message: string }[];
}

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail ?? problem.title);
  }
}

let accessToken: string | undefined;

export const setToken = (token: string | undefined): void => {
  accessToken = token;
};
export const hasToken = (): boolean => accessToken !== undefined;

/** The fetch every call makes: the session's token, and a JSON body when there is one. */
function send(method: string, path: string, body: unknown): Promise<Response> {
  return fetch(`/api${path}`, {
    method,
    headers: {
      ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

/** A JSON call to `/api/…`; a problem+json answer becomes an ApiError carrying it. */
export async function api<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await send(method, path, body);
  const text = await response.text();
  const parsed = text ? (JSON.parse(text) as unknown) : undefined;
  if (!response.ok)
    throw new ApiError((parsed as Problem | undefined) ?? { status: response.status, title: response.statusText });
  return parsed as T;
}

/** What an error says to a person: the detail and each field's message. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiError) {
    const fields = (error.problem.errors ?? []).map((e) => `${e.path.replace(/^\//, '')}: ${e.message}`);
    return [error.problem.detail ?? error.problem.title, ...fields].join(' — ');
  }
  return error instanceof Error ? error.message : String(error);
}

/** A binary answer (an export archive) through the same authenticated call. */
export async function apiBytes(method: string, path: string, body?: unknown): Promise<ArrayBuffer> {
  const response = await send(method, path, body);
  if (!response.ok) {
    const text = await response.text();
    throw new ApiError(text ? (JSON.parse(text) as Problem) : { status: response.status, title: response.statusText });
  }
  return response.arrayBuffer();
}
