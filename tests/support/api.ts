import { admin, type RunningHost } from './local-host.js';

export const STRONG = 'a quiet meadow under autumn rain';

export interface Reply {
  status: number;
  body: Record<string, unknown>;
}

/** A JSON call to the local host's API. */
export async function call(
  host: RunningHost,
  method: string,
  path: string,
  auth: string,
  body?: unknown,
): Promise<Reply> {
  const response = await fetch(`${host.apiBaseUrl}${path}`, {
    method,
    headers: {
      ...(auth ? { authorization: auth } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** Logs in with a one-time password, sets STRONG, and returns a full-rights Authorization value. */
export async function person(host: RunningHost, tenant: string, username: string, initial: string): Promise<string> {
  const first = await call(host, 'POST', '/auth/login', '', { tenant, username, password: initial });
  await call(host, 'POST', '/auth/password', `Bearer ${String(first.body.accessToken)}`, {
    currentPassword: initial,
    newPassword: STRONG,
  });
  return `Bearer ${String((await call(host, 'POST', '/auth/login', '', { tenant, username, password: STRONG })).body.accessToken)}`;
}

/**
 * A tenant made with the admin CLI (as `npm run admin -- tenant create` would) and its admin's
 * first login done: returns the admin's full-rights Authorization value.
 */
export async function tenantWithAdmin(host: RunningHost, tenant: string, username = 'admin'): Promise<string> {
  const created = admin(host.dataDir, [
    'tenant',
    'create',
    '--id',
    tenant,
    '--name',
    tenant,
    '--admin-username',
    username,
    '--admin-email',
    `${username}@${tenant}.example`,
  ]);
  const initial = (created.json?.admin as { initialPassword?: string } | undefined)?.initialPassword;
  if (!initial) throw new Error(`tenant create failed: ${created.stderr}`);
  return person(host, tenant, username, initial);
}
