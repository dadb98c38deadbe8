import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminAddressOf } from './discovery-server.js';

test('a reported admin address is kept as written, a wildcard host becomes the stream peer host', () => {
  assert.equal(adminAddressOf('127.0.0.1:15000', '127.0.0.1:40000'), '127.0.0.1:15000');
  assert.equal(adminAddressOf('gateway-0.gateway:15000', '10.0.0.5:40000'), 'gateway-0.gateway:15000');
  assert.equal(adminAddressOf('[::1]:15000', '::1:40000'), '[::1]:15000');
  assert.equal(adminAddressOf('0.0.0.0:15000', '10.0.0.5:40000'), '10.0.0.5:15000');
  assert.equal(adminAddressOf('[::]:15000', '::ffff:10.0.0.7:40000'), '10.0.0.7:15000');
  assert.equal(adminAddressOf('[::]:15000', 'fd00::5:40000'), '[fd00::5]:15000');
  assert.equal(adminAddressOf('0.0.0.0:15000', 'unknown'), '0.0.0.0:15000');
});

test('no address, or one that is not host:port, is not shown', () => {
  assert.equal(adminAddressOf(undefined, '127.0.0.1:1'), null);
  assert.equal(adminAddressOf('', '127.0.0.1:1'), null);
  assert.equal(adminAddressOf('http://x:1/', '127.0.0.1:1'), null);
  assert.equal(adminAddressOf('host:99999', '127.0.0.1:1'), null);
  assert.equal(adminAddressOf('no port', '127.0.0.1:1'), null);
});
