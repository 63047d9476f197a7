// Versions and cached paths of the k8s test harness. test/k8s/build.sh fills
// the binary cache; nothing here downloads anything.
import { accessSync, constants, existsSync } from 'node:fs';
import { join } from 'node:path';

export const K8S_VERSION = process.env.K8S_VERSION ?? 'v1.31.4';
export const COREDNS_VERSION = process.env.COREDNS_VERSION ?? 'v1.11.3';
export const CACHE_DIR = process.env.SLUICE_K8S_CACHE ?? '/var/cache/sluice-k8s';
export const BIN_DIR = join(CACHE_DIR, K8S_VERSION, 'bin');
export const IMAGE_DIR = join(CACHE_DIR, 'images');
/** The reference CNI plugins (Debian containernetworking-plugins). */
export const REFERENCE_CNI_DIR = '/usr/lib/cni';

/** Binaries the cluster needs (e2e.test and crictl are optional). */
export const REQUIRED_BINARIES = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy', 'kubectl', 'agnhost', 'coredns'] as const;
export type K8sBinary = (typeof REQUIRED_BINARIES)[number] | 'e2e.test' | 'crictl';

export function bin(name: K8sBinary): string {
  return join(BIN_DIR, name);
}

/** Host commands the harness runs (Debian packages: etcd-server, containerd, runc, conntrack, iptables, openssl, iproute2, util-linux, gcc). */
export const HOST_COMMANDS = ['etcd', 'containerd', 'containerd-shim-runc-v2', 'runc', 'ctr', 'conntrack', 'iptables', 'openssl', 'ip', 'unshare', 'nsenter', 'mount', 'tar', 'gcc'] as const;

function onPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      // next
    }
  }
  return false;
}

/**
 * Throws unless every cached binary and host command is there; the message
 * says what to run. Tests call this so a machine without the cache fails
 * loudly instead of skipping.
 */
export function requireBinaries(extra: K8sBinary[] = []): void {
  const missing = [...REQUIRED_BINARIES, ...extra].filter((b) => !existsSync(bin(b)));
  if (missing.length) {
    throw new Error(
      `Kubernetes ${K8S_VERSION} binaries missing from ${BIN_DIR}: ${missing.join(', ')}. ` +
        'Build them once with test/k8s/build.sh (about 12 min cold, through the Go module proxy; cached after that).',
    );
  }
  const commands = HOST_COMMANDS.filter((c) => !onPath(c));
  if (commands.length) {
    throw new Error(`host commands missing: ${commands.join(', ')} (apt-get install etcd-server containerd runc conntrack iptables openssl iproute2 util-linux gcc)`);
  }
}
