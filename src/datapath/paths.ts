// Where the compiled eBPF objects are: SLUICE_BPF_DIR, else build/bpf next to
// the bundle (build/bin/…) or to the sources (src/datapath/…).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatapathError } from './errors.js';

export function bpfObjectPath(file: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = process.env.SLUICE_BPF_DIR
    ? [join(process.env.SLUICE_BPF_DIR, file)]
    : [join(here, '..', 'bpf', file), join(here, '..', '..', 'build', 'bpf', file)];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new DatapathError('SLUICE_BPF_OBJECT_MISSING', `eBPF object ${file} not found (tried ${candidates.join(', ')}); run \`make build\``);
  return found;
}
