// A scratch BPF hash map for tests of the typed map wrappers against the
// real kernel: made with bpftool, pinned under a per-process name, opened;
// remove() closes it and takes the pin away.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { native } from '../../src/native/index.js';

export interface ScratchMap {
  fd: number;
  remove(): void;
}

export function scratchHashMap(name: string, keySize: number, valueSize: number, entries: number): ScratchMap {
  const pin = `/sys/fs/bpf/sluice-test-${name}-${process.pid}`;
  rmSync(pin, { force: true });
  execFileSync('bpftool', ['map', 'create', pin, 'type', 'hash', 'key', String(keySize), 'value', String(valueSize), 'entries', String(entries), 'name', `sluice_${name}_t`]);
  const fd = native().objGet(pin)!;
  return {
    fd,
    remove() {
      if (fd >= 0) native().close(fd);
      rmSync(pin, { force: true });
    },
  };
}
