import { describe, expect, it } from 'vitest';
import { compareRoutes, compileRoute, matchRoute } from '../../local-host/routes.js';

describe('route templates like the Functions host', () => {
  it('binds plain parameters and decodes them', () => {
    expect(matchRoute(compileRoute('orders/{id}'), '/orders/abc%20d')).toEqual({ id: 'abc d' });
    expect(matchRoute(compileRoute('orders/{id}'), '/orders')).toBeUndefined();
    expect(matchRoute(compileRoute('orders/{id}'), '/orders/a/b')).toBeUndefined();
  });

  it('matches literals case-insensitively', () => {
    expect(matchRoute(compileRoute('audit/verify'), '/Audit/Verify')).toEqual({});
  });

  it('supports optional parameters', () => {
    const route = compileRoute('items/{name?}');
    expect(matchRoute(route, '/items')).toEqual({});
    expect(matchRoute(route, '/items/x')).toEqual({ name: 'x' });
  });

  it('checks typed constraints', () => {
    expect(matchRoute(compileRoute('n/{id:int}'), '/n/42')).toEqual({ id: '42' });
    expect(matchRoute(compileRoute('n/{id:int}'), '/n/4x')).toBeUndefined();
    expect(matchRoute(compileRoute('g/{id:guid}'), '/g/0f8fad5b-d9cb-469f-a165-70867728950e')).toBeDefined();
    expect(matchRoute(compileRoute('g/{id:guid}'), '/g/nope')).toBeUndefined();
    expect(matchRoute(compileRoute('s/{s:alpha:minlength(3)}'), '/s/ab')).toBeUndefined();
    expect(matchRoute(compileRoute('s/{s:alpha:minlength(3)}'), '/s/abc')).toEqual({ s: 'abc' });
    expect(matchRoute(compileRoute('b/{flag:bool}'), '/b/true')).toEqual({ flag: 'true' });
  });

  it('binds catch-all parameters', () => {
    expect(matchRoute(compileRoute('files/{*path}'), '/files/a/b/c')).toEqual({ path: 'a/b/c' });
  });

  it('tries literal segments before parameters', () => {
    const routes = [compileRoute('orders/{id}'), compileRoute('orders/search'), compileRoute('{*all}')].sort(
      compareRoutes,
    );
    expect(routes.map((r) => r.template)).toEqual(['orders/search', 'orders/{id}', '{*all}']);
  });

  it('refuses malformed templates', () => {
    expect(() => compileRoute('a/{b')).toThrowError();
    expect(() => compileRoute('a/{b:nosuch}')).toThrowError();
  });
});
