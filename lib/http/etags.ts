import { createHash } from 'node:crypto';

/**
 * Entity tags as RFC 9110 §8.8.3 defines them. LabVault's are strong: the storage row's version
 * (Azure Tables' ETag, a weak `W/"datetime'…'"` that must not leak through as ours) hashed into an
 * opaque tag, or the hash of the representation itself. Equal tags mean byte-equal representations.
 */
export function strongEtag(storageVersion: string): string {
  return `"${createHash('sha256').update(storageVersion).digest('base64url').slice(0, 27)}"`;
}

/** The strong tag of a representation (what a GET answers without a stored version of its own). */
export function representationEtag(body: Uint8Array | string): string {
  return `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
}

/** `*`, or the entity tags of an If-Match / If-None-Match list (weak ones keep their `W/`). */
function parseEtagList(header: string): '*' | string[] {
  if (header.trim() === '*') return '*';
  return [...header.matchAll(/\s*((?:W\/)?"[^"]*")\s*(?:,|$)/g)].map((m) => m[1] ?? '');
}

/** If-Match (strong comparison): `*` matches any current representation; weak tags never match. */
export function ifMatchHolds(header: string, current: string | undefined): boolean {
  if (current === undefined) return false;
  const tags = parseEtagList(header);
  return tags === '*' || tags.includes(current);
}

/** If-None-Match (weak comparison): true when the client's copy is current (answer 304 to a GET). */
export function ifNoneMatchHits(header: string, current: string): boolean {
  const tags = parseEtagList(header);
  if (tags === '*') return true;
  const bare = (tag: string) => tag.replace(/^W\//, '');
  return tags.some((tag) => bare(tag) === bare(current));
}
