import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Version {
  value: string;
  version: string;
  created: number;
  contentType?: string;
}

/**
 * A small HTTPS stand-in of the Key Vault secrets REST API, enough for @azure/keyvault-secrets:
 * the bearer challenge, versioned secrets, soft delete (deleted secrets, scheduled purge date) and
 * purge, which answers 403 like a vault with purge protection when `purgeProtection` is set.
 */
export class KeyVaultStandIn {
  readonly secrets = new Map<string, Version[]>();
  readonly deleted = new Map<string, { versions: Version[]; deletedDate: number; scheduledPurgeDate: number }>();
  readonly ca: string;
  purgeProtection = false;
  softDeleteDays = 90;
  #server: Server;
  url = '';

  constructor() {
    const dir = mkdtempSync(join(tmpdir(), 'kv-standin-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    this.ca = readFileSync(join(dir, 'cert.pem'), 'utf8');
    this.#server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: this.ca }, (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () =>
        this.#handle(
          req.method ?? 'GET',
          new URL(req.url ?? '/', 'https://localhost'),
          req.headers.authorization,
          body,
          res,
        ),
      );
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', () => r()));
    this.url = `https://localhost:${(this.#server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => this.#server.close(() => r()));
  }

  #bundle(name: string, v: Version): Record<string, unknown> {
    return {
      value: v.value,
      id: `${this.url}/secrets/${name}/${v.version}`,
      ...(v.contentType ? { contentType: v.contentType } : {}),
      attributes: {
        enabled: true,
        created: Math.floor(v.created / 1000),
        updated: Math.floor(v.created / 1000),
        recoveryLevel: 'Recoverable+Purgeable',
        recoverableDays: this.softDeleteDays,
      },
    };
  }

  #handle(
    method: string,
    url: URL,
    authorization: string | undefined,
    body: string,
    res: import('node:http').ServerResponse,
  ): void {
    const send = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(payload === undefined ? '' : JSON.stringify(payload));
    };
    const notFound = (what: string) => send(404, { error: { code: 'SecretNotFound', message: `${what} not found` } });
    if (!authorization?.startsWith('Bearer ')) {
      send(
        401,
        { error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } },
        {
          'www-authenticate':
            'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net"',
        },
      );
      return;
    }
    const [, collection, name, version] = url.pathname.split('/');
    if (collection === 'secrets' && name) {
      if (method === 'PUT') {
        const input = JSON.parse(body) as { value: string; contentType?: string };
        const v: Version = {
          value: input.value,
          version: randomBytes(16).toString('hex'),
          created: Date.now(),
          ...(input.contentType ? { contentType: input.contentType } : {}),
        };
        if (this.deleted.has(name))
          return send(409, {
            error: { code: 'Conflict', message: 'Secret is currently in a deleted but recoverable state' },
          });
        this.secrets.set(name, [...(this.secrets.get(name) ?? []), v]);
        return send(200, this.#bundle(name, v));
      }
      const versions = this.secrets.get(name);
      if (method === 'GET') {
        const v = version ? versions?.find((x) => x.version === version) : versions?.[versions.length - 1];
        return v ? send(200, this.#bundle(name, v)) : notFound(name);
      }
      if (method === 'DELETE') {
        if (!versions) return notFound(name);
        const now = Date.now();
        const entry = { versions, deletedDate: now, scheduledPurgeDate: now + this.softDeleteDays * 24 * 3600 * 1000 };
        this.secrets.delete(name);
        this.deleted.set(name, entry);
        return send(200, this.#deleted(name, entry));
      }
    }
    if (collection === 'deletedsecrets' && name) {
      const entry = this.deleted.get(name);
      if (!entry) return notFound(`deleted ${name}`);
      if (method === 'GET') return send(200, this.#deleted(name, entry));
      if (method === 'DELETE') {
        if (this.purgeProtection)
          return send(403, {
            error: {
              code: 'Forbidden',
              message: `Operation "purge" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.`,
            },
          });
        this.deleted.delete(name);
        return send(204);
      }
    }
    send(400, { error: { code: 'BadParameter', message: 'not supported by the stand-in' } });
  }

  #deleted(
    name: string,
    entry: { versions: Version[]; deletedDate: number; scheduledPurgeDate: number },
  ): Record<string, unknown> {
    const last = entry.versions[entry.versions.length - 1] as Version;
    return {
      ...this.#bundle(name, last),
      recoveryId: `${this.url}/deletedsecrets/${name}`,
      deletedDate: Math.floor(entry.deletedDate / 1000),
      scheduledPurgeDate: Math.floor(entry.scheduledPurgeDate / 1000),
    };
  }
}
