import { describe, expect, it } from 'vitest';
import { AttachmentLocks } from './lock.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('AttachmentLocks', () => {
  it('serializes one key, not different keys', async () => {
    const locks = new AttachmentLocks();
    const log: string[] = [];
    const op = (key: string, name: string) =>
      locks.withKey(key, async () => {
        log.push(`${name}+`);
        await tick();
        log.push(`${name}-`);
      });
    await Promise.all([op('a', 'a1'), op('a', 'a2'), op('b', 'b1')]);
    expect(log.indexOf('a1-')).toBeLessThan(log.indexOf('a2+'));
    expect(log.indexOf('b1+')).toBeLessThan(log.indexOf('a1-'));
  });

  it('runs exclusive work alone', async () => {
    const locks = new AttachmentLocks();
    const log: string[] = [];
    const op = (name: string) =>
      locks.withKey(name, async () => {
        log.push(`${name}+`);
        await tick();
        log.push(`${name}-`);
      });
    const a = op('a');
    const gc = locks.exclusive(async () => {
      log.push('gc+');
      await tick();
      log.push('gc-');
    });
    const b = op('b');
    await Promise.all([a, gc, b]);
    expect(log).toEqual(['a+', 'a-', 'gc+', 'gc-', 'b+', 'b-']);
  });
});
