/**
 * Azure Functions (ASP.NET Core) route templates: literal segments, `{name}`, optional `{name?}`,
 * constrained `{id:int}`, `{id:guid}`, `{s:minlength(3)}` …, and catch-all `{*rest}`.
 */
type Segment =
  | { kind: 'literal'; text: string }
  | { kind: 'param'; name: string; optional: boolean; catchAll: boolean; constraints: Constraint[] };

type Constraint = (value: string) => boolean;

export interface CompiledRoute {
  template: string;
  segments: Segment[];
  /** Higher first: literal > constrained > plain > optional > catch-all, segment by segment. */
  rank: number[];
}

const GUID = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;

function constraint(spec: string): Constraint {
  const m = /^([a-z]+)(?:\((.*)\))?$/i.exec(spec);
  if (!m) throw new Error(`Unknown route constraint "${spec}"`);
  const name = (m[1] ?? '').toLowerCase();
  const args = (m[2] ?? '').split(',').map((a) => a.trim());
  const n = (i: number) => Number(args[i]);
  switch (name) {
    case 'int':
    case 'long':
      return (v) => /^-?\d+$/.test(v) && (name === 'long' || Math.abs(Number(v)) <= 2147483647);
    case 'bool':
      return (v) => /^(true|false)$/i.test(v);
    case 'guid':
      return (v) => GUID.test(v);
    case 'alpha':
      return (v) => /^[a-zA-Z]+$/.test(v);
    case 'decimal':
    case 'double':
    case 'float':
      return (v) => v.trim() !== '' && Number.isFinite(Number(v));
    case 'datetime':
      return (v) => !Number.isNaN(Date.parse(v));
    case 'minlength':
      return (v) => v.length >= n(0);
    case 'maxlength':
      return (v) => v.length <= n(0);
    case 'length':
      return args.length === 2 ? (v) => v.length >= n(0) && v.length <= n(1) : (v) => v.length === n(0);
    case 'min':
      return (v) => /^-?\d+$/.test(v) && Number(v) >= n(0);
    case 'max':
      return (v) => /^-?\d+$/.test(v) && Number(v) <= n(0);
    case 'range':
      return (v) => /^-?\d+$/.test(v) && Number(v) >= n(0) && Number(v) <= n(1);
    case 'regex': {
      const pattern = new RegExp(m[2] ?? '');
      return (v) => pattern.test(v);
    }
    default:
      throw new Error(`Unknown route constraint "${spec}"`);
  }
}

export function compileRoute(template: string): CompiledRoute {
  const segments: Segment[] = template
    .replace(/^\/+|\/+$/g, '')
    .split('/')
    .filter((s) => s !== '')
    .map((raw): Segment => {
      const m = /^\{(\*)?([A-Za-z_][A-Za-z0-9_]*)((?::[^:?}]+(?:\([^)]*\))?)*)(\?)?\}$/.exec(raw);
      if (!m) {
        if (raw.includes('{')) throw new Error(`Unsupported route segment "${raw}"`);
        return { kind: 'literal', text: raw.toLowerCase() };
      }
      const constraints = (m[3] ?? '').split(':').filter(Boolean).map(constraint);
      return {
        kind: 'param',
        name: m[2] ?? '',
        catchAll: m[1] === '*',
        optional: m[4] === '?' || m[1] === '*',
        constraints,
      };
    });
  const rank = segments.map((s) =>
    s.kind === 'literal' ? 4 : s.catchAll ? 0 : s.optional ? 1 : s.constraints.length > 0 ? 3 : 2,
  );
  return { template, segments, rank };
}

/** A request path (without the `/api` prefix) split into segments once per request, as given and lower-cased. */
export interface PathSegments {
  raw: readonly string[];
  lower: readonly string[];
}

export function pathSegments(path: string): PathSegments {
  const raw = path
    .replace(/^\/+|\/+$/g, '')
    .split('/')
    .filter((p) => p !== '');
  return { raw, lower: raw.map((p) => p.toLowerCase()) };
}

/** Matches a request path (without the `/api` prefix) and returns the bound parameters. */
export function matchRoute(route: CompiledRoute, path: string): Record<string, string> | undefined {
  return matchPath(route, pathSegments(path));
}

/** `matchRoute` on a path already split by `pathSegments` (the host tries every route on one split). */
export function matchPath(route: CompiledRoute, path: PathSegments): Record<string, string> | undefined {
  const parts = path.raw;
  const params: Record<string, string> = {};
  let i = 0;
  for (const segment of route.segments) {
    if (segment.kind === 'literal') {
      if (path.lower[i] !== segment.text) return undefined;
      i++;
      continue;
    }
    if (segment.catchAll) {
      const rest = parts.slice(i).map(decodeSegment);
      if (rest.some((r) => r === undefined)) return undefined;
      if (rest.length > 0) params[segment.name] = rest.join('/');
      i = parts.length;
      continue;
    }
    const raw = parts[i];
    if (raw === undefined) {
      if (segment.optional) continue;
      return undefined;
    }
    const value = decodeSegment(raw);
    if (value === undefined || !segment.constraints.every((c) => c(value))) return undefined;
    params[segment.name] = value;
    i++;
  }
  return i === parts.length ? params : undefined;
}

function decodeSegment(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/** Orders routes so the most specific template is tried first. */
export function compareRoutes(a: CompiledRoute, b: CompiledRoute): number {
  for (let i = 0; i < Math.max(a.rank.length, b.rank.length); i++) {
    const d = (b.rank[i] ?? -1) - (a.rank[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}
