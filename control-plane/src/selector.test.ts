import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileSelector, resolveNode } from './selector.js';

const c = (selector: string, firstRevision: number) => ({ compiled: compileSelector(selector), firstRevision });

test('globs match node names; dots and dashes are literal', () => {
  assert.ok(compileSelector('gateway-*').regex.test('gateway-1'));
  assert.ok(!compileSelector('gateway-*').regex.test('orders-1'));
  assert.ok(compileSelector('orders-?').regex.test('orders-7'));
  assert.ok(!compileSelector('orders-?').regex.test('orders-17'));
  assert.ok(!compileSelector('a.b').regex.test('axb'));
  assert.ok(compileSelector('*').regex.test('anything'));
});

test('the most specific selector wins: exact name, then more literal characters; ties go to the older one', () => {
  const all = [c('*', 1), c('gateway-*', 5), c('gateway-eu-*', 9), c('gateway-eu-1', 12)];
  assert.equal(resolveNode('gateway-eu-1', all)?.compiled.selector, 'gateway-eu-1');
  assert.equal(resolveNode('gateway-eu-2', all)?.compiled.selector, 'gateway-eu-*');
  assert.equal(resolveNode('gateway-us-2', all)?.compiled.selector, 'gateway-*');
  assert.equal(resolveNode('orders-1', all)?.compiled.selector, '*');
  assert.equal(resolveNode('x', [c('gateway-*', 1)]), undefined);
  // gw-? and g?-1 both have three literals and both match gw-1: the older keeps it.
  assert.equal(resolveNode('gw-1', [c('g?-1', 7), c('gw-?', 3)])?.compiled.selector, 'gw-?');
});
