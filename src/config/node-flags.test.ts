import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeEnvOf, nodeFlagsOf } from './node-flags.js';

const dir = mkdtempSync(join(tmpdir(), 'slt-flags-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(first: string): string {
  const p = join(dir, `s${Math.random().toString(36).slice(2)}`);
  writeFileSync(p, `${first}\nconsole.log(1);\n`);
  return p;
}

describe('nodeFlagsOf', () => {
  it('reads the flags of an env -S node shebang', () => {
    expect(nodeFlagsOf(script('#!/usr/bin/env -S node --max-semi-space-size=4'))).toEqual(['--max-semi-space-size=4']);
    expect(nodeFlagsOf(script('#!/usr/bin/env -S node --max-semi-space-size=4 --stack-size=2000'))).toEqual(['--max-semi-space-size=4', '--stack-size=2000']);
  });
  it('finds none in a plain shebang or none at all', () => {
    expect(nodeFlagsOf(script('#!/usr/bin/env node'))).toEqual([]);
    expect(nodeFlagsOf(script('console.log(0);'))).toEqual([]);
    expect(nodeEnvOf(script('#!/usr/bin/env -S node --max-semi-space-size=4'))).toEqual({});
    expect(nodeEnvOf(script('console.log(0);'))).toEqual({});
  });
  it('reads the environment an env -S shebang sets before node, and the flags after it', () => {
    const s = script('#!/usr/bin/env -S MALLOC_ARENA_MAX=2 A_B=x=y node --max-semi-space-size=4');
    expect(nodeEnvOf(s)).toEqual({ MALLOC_ARENA_MAX: '2', A_B: 'x=y' });
    expect(nodeFlagsOf(s)).toEqual(['--max-semi-space-size=4']);
  });
});
