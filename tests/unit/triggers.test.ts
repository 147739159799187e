import { describe, expect, it } from 'vitest';
import { compileBlobPath } from '../../local-host/blob-watcher.js';
import { nextOccurrence } from '../../local-host/timers.js';

describe('NCRONTAB schedules (seconds first, UTC)', () => {
  it('computes the next occurrence', () => {
    expect(nextOccurrence('0 0 2 * * *', new Date('2026-11-27T01:59:59Z')).toISOString()).toBe(
      '2026-11-27T02:00:00.000Z',
    );
    expect(nextOccurrence('0 0 2 * * *', new Date('2026-11-27T02:00:00Z')).toISOString()).toBe(
      '2026-11-28T02:00:00.000Z',
    );
    expect(nextOccurrence('*/15 * * * * *', new Date('2026-11-27T10:00:07Z')).toISOString()).toBe(
      '2026-11-27T10:00:15.000Z',
    );
    expect(nextOccurrence('0 30 9 * * 1-5', new Date('2026-11-27T10:00:00Z')).toISOString()).toBe(
      '2026-11-30T09:30:00.000Z',
    );
  });

  it('takes TimeSpan schedules', () => {
    expect(nextOccurrence('00:05:00', new Date('2026-11-27T10:01:00Z')).toISOString()).toBe('2026-11-27T10:05:00.000Z');
    expect(nextOccurrence('1.00:00:00', new Date('2026-11-27T10:01:00Z')).toISOString()).toBe(
      '2026-11-28T00:00:00.000Z',
    );
  });

  it('refuses five-field crontab and nonsense', () => {
    expect(() => nextOccurrence('0 2 * * *', new Date())).toThrowError(/6 fields/);
    expect(() => nextOccurrence('a b c d e f', new Date())).toThrowError();
  });
});

describe('blob trigger paths', () => {
  it('binds names and lets the last one span folders', () => {
    const path = compileBlobPath('specimen-uploads/{tenant}/{order}/{specimen}/{imageId}');
    expect(path.container).toBe('specimen-uploads');
    expect(path.prefix).toBe('');
    expect(path.pattern.exec('lab-a/o1/S-1/img-1')?.slice(1)).toEqual(['lab-a', 'o1', 'S-1', 'img-1']);
    expect(path.pattern.exec('lab-a/o1')).toBeNull();
    const deep = compileBlobPath('samples/in/{name}');
    expect(deep.prefix).toBe('in/');
    expect(deep.pattern.exec('in/a/b.txt')?.[1]).toBe('a/b.txt');
    const ext = compileBlobPath('images/{name}.png');
    expect(ext.pattern.exec('cat.png')?.[1]).toBe('cat');
    expect(ext.pattern.exec('cat.jpg')).toBeNull();
  });
});
