import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join, resolve } from 'node:path';

const RESULTS = resolve(import.meta.dirname, '../../test-results/reliability');

/** Adds figures of one suite to test-results/reliability/figures.json (docs/reliability.md). */
export function recordFigures(suite: string, figures: Record<string, unknown>): void {
  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, 'figures.json');
  let all: Record<string, unknown> = {};
  try {
    all = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    // first suite of the run
  }
  all[suite] = { ...(all[suite] as Record<string, unknown> | undefined), ...figures, at: new Date().toISOString() };
  writeFileSync(file, JSON.stringify(all, null, 2));
}

export interface RawReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 128 });

/**
 * One HTTP call over kept-alive connections (node:http costs the load generator about half the CPU
 * of fetch, and it shares the cores with the host and Azurite). `abortAfterMs` drops the request
 * midway, as a client whose timeout fired would.
 */
export function httpCall(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; abortAfterMs?: number } = {},
): Promise<RawReply> {
  return new Promise((resolveCall, reject) => {
    const body = options.body;
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        agent,
        headers: {
          ...options.headers,
          ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const all = Buffer.concat(chunks);
          resolveCall({ status: res.statusCode ?? 0, headers: res.headers, body: all, text: all.toString() });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.abortAfterMs !== undefined)
      setTimeout(() => req.destroy(new Error('client gave up')), options.abortAfterMs);
    req.end(body);
  });
}

export interface JsonReply extends RawReply {
  /** The parsed body; empty for an empty or non-JSON (binary) answer. */
  json: Record<string, unknown>;
}

/** A call to LabVault's API: `auth` as the Authorization header, `body` sent as JSON (a string as it is). */
export async function callJson(
  baseUrl: string,
  method: string,
  path: string,
  auth: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<JsonReply> {
  const reply = await httpCall(`${baseUrl}${path}`, {
    method,
    headers: {
      ...(auth ? { authorization: auth } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  let json: Record<string, unknown> = {};
  try {
    json = reply.text ? (JSON.parse(reply.text) as Record<string, unknown>) : {};
  } catch {
    // binary answers (images)
  }
  return { ...reply, json };
}

/** Reads until `done` holds, or fails naming `what` and the last value read. */
export async function until<T>(
  what: string,
  read: () => Promise<T>,
  done: (value: T) => boolean,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline)
      throw new Error(
        `${what} did not finish: ${JSON.stringify((value as { json?: unknown }).json ?? value).slice(0, 500)}`,
      );
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 200));
  }
}

export async function pool<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      for (let i = next++; i < count; i = next++) results[i] = await task(i);
    }),
  );
  return results;
}

/** A small seeded PRNG (mulberry32), so a failing run can be repeated with its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
