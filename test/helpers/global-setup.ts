// Sweeps leftovers of crashed runs (names with our test prefix whose owning
// process is gone; a live run elsewhere on the machine is left alone) before
// and after the whole suite, and makes sure bpffs is mounted (we unmount it
// again only if we mounted it).
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { isBpffs } from '../../src/datapath/index.js';
import { ownerGone, sh } from './netns.js';

let mountedBpffs = false;

const bpffsMounted = () => isBpffs('/sys/fs/bpf');

function sweep(): void {
  let names: string[] = [];
  try {
    names = readdirSync('/var/run/netns');
  } catch {
    names = [];
  }
  for (const n of names) if (ownerGone(n)) sh('ip', ['netns', 'del', n], { allowFail: true });
  const links = sh('ip', ['-o', 'link', 'show'], { allowFail: true });
  for (const line of links.split('\n')) {
    const m = /^\d+: ([^:@]+)/.exec(line);
    if (m?.[1] && ownerGone(m[1])) sh('ip', ['link', 'del', m[1]], { allowFail: true });
  }
  if (!bpffsMounted()) return;
  for (const d of readdirSync('/sys/fs/bpf')) {
    if (ownerGone(d)) rmSync(`/sys/fs/bpf/${d}`, { recursive: true, force: true });
  }
}

export function setup(): void {
  if (process.getuid?.() !== 0) return;
  sweep();
  if (!bpffsMounted()) {
    execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
    mountedBpffs = true;
  }
}

export function teardown(): void {
  if (process.getuid?.() !== 0) return;
  sweep();
  if (mountedBpffs) execFileSync('umount', ['/sys/fs/bpf']);
}
