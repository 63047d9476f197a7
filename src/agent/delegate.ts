// Delegated IPAM: runs the conflist's `ipam.type` plugin from CNI_PATH the
// standard way (same env, the network config on stdin), as libcni's
// invoke.DelegateAdd does.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CniCode, CniError, type DelegatePort, type NetConf } from '../cni/index.js';

const DELEGATE_TIMEOUT_MS = 60_000;

export class ExecDelegate implements DelegatePort {
  async run(command: 'ADD' | 'DEL' | 'CHECK' | 'GC', conf: NetConf, env: Record<string, string>): Promise<unknown> {
    const type = conf.ipam!.type;
    const dirs = (env.CNI_PATH ?? '').split(':').filter(Boolean);
    const plugin = dirs.map((d) => join(d, type)).find((p) => existsSync(p));
    if (!plugin) throw new CniError(CniCode.INVALID_NETWORK_CONFIG, `IPAM plugin ${type} not found in CNI_PATH`, `searched: ${dirs.join(', ') || '(CNI_PATH is empty)'}`);
    const stdin = JSON.stringify({ ...conf.raw, ipam: conf.ipam, cniVersion: conf.cniVersion });
    const { status, stdout, stderr } = await new Promise<{ status: number; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(plugin, [], { env: { ...env, CNI_COMMAND: command }, stdio: ['pipe', 'pipe', 'pipe'], timeout: DELEGATE_TIMEOUT_MS });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ status: code ?? 1, stdout: out, stderr: err }));
      child.stdin.end(stdin);
    });
    if (status !== 0) {
      let e: { code?: number; msg?: string; details?: string } = {};
      try {
        e = JSON.parse(stdout);
      } catch {
        e = { msg: stdout || stderr };
      }
      throw new CniError(typeof e.code === 'number' ? e.code : CniCode.INTERNAL, `IPAM plugin ${type}: ${e.msg ?? 'failed'}`, e.details ?? stderr);
    }
    return stdout.trim() === '' ? undefined : JSON.parse(stdout);
  }
}
