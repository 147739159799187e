import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { app, type HttpResponseInit } from '@azure/functions';

// The web console: static files built by scripts/build-console.ts into dist/console, served from
// the same origin as the API. Deployed, this file is dist/functions/console.js (the build beside it
// in dist/console); run from source by the local host, it is functions/console.ts.
const ROOTS = [resolve(import.meta.dirname, '..', 'dist', 'console'), resolve(import.meta.dirname, '..', 'console')];
/** A built console has its assets folder (the sources in console/ have none). */
const root = (): string | undefined => ROOTS.find((r) => existsSync(join(r, 'assets')));

/** Scripts and styles only from here, no inline script or style, never framed, forms post only here. */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const HEADERS = {
  'Content-Security-Policy': CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
};

const TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

function serve(path: string): HttpResponseInit {
  const base = root();
  if (!base) return { status: 503, headers: HEADERS, body: 'The console is not built (npm run build).' };
  // Hashed assets: only names the build writes, cached for a year; anything else is the app page.
  const asset = /^assets\/([a-z]+-[0-9a-f]{16}\.(js|css))$/.exec(path);
  if (asset) {
    const file = join(base, 'assets', asset[1] as string);
    if (!existsSync(file)) return { status: 404, headers: HEADERS };
    return {
      status: 200,
      headers: {
        ...HEADERS,
        'Content-Type': TYPES[asset[2] as string] as string,
        'Cache-Control': 'public, max-age=31536000, immutable',
      },
      body: readFileSync(file),
    };
  }
  if (path !== '' && path !== 'index.html') return { status: 404, headers: HEADERS };
  return {
    status: 200,
    headers: { ...HEADERS, 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' },
    body: readFileSync(join(base, 'index.html')),
  };
}

app.http('consoleFiles', {
  methods: ['GET', 'HEAD'],
  route: 'console/{*path}',
  authLevel: 'anonymous',
  handler: async (request) => serve(request.params.path ?? ''),
});
