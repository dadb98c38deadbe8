import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { demoOutput } from './demo.js';

describe('tsmesh demo output', () => {
  const run = (verbose: boolean) => {
    const lines: string[] = [];
    const sink = demoOutput(verbose, (l) => lines.push(l));
    sink('gateway-1', 'stdout', '{"level":30,"msg":"listening","url":"http://127.0.0.1:1"}');
    sink('gateway-1', 'stdout', '{"level":40,"msg":"redis unreachable","err":"ECONNREFUSED"}');
    sink('edge', 'stdout', 'listener edge http://127.0.0.1:8080');
    sink('edge', 'stdout', '{"time":"...","status":200,"reason":"none"}');
    sink('control-plane', 'stderr', 'something broke');
    sink('control-plane', 'stdout', '   ');
    return lines;
  };

  it('is quiet by default: warnings, errors and stderr, each with its process name', () => {
    assert.deepEqual(run(false), ['[gateway-1]        warn redis unreachable: ECONNREFUSED', '[control-plane]    something broke']);
  });

  it('shows every line with --verbose', () => {
    const lines = run(true);
    assert.equal(lines.length, 5);
    assert.ok(lines.every((l) => /^\[(gateway-1|edge|control-plane)\] +\S/.test(l)));
    assert.ok(lines.includes('[edge]             listener edge http://127.0.0.1:8080'));
  });
});
