// Container images for the k8s test cluster without a registry: each is one
// uncompressed layer in an OCI image layout packed into a tar that
// `ctr images import` takes (the approach of test/helpers/oci-image.ts,
// generalised). Built once and cached under IMAGE_DIR, keyed by the content of
// what goes in, so a rebuilt binary makes a new archive and an unchanged one
// costs nothing.
//
//   pause    registry.k8s.io/pause:3.10                    a static C program (gcc -static)
//   agnhost  registry.k8s.io/e2e-test-images/agnhost:2.52  the agnhost binary + busybox applets (sh, nc, nslookup, ...)
//   coredns  registry.k8s.io/coredns/coredns:v1.11.3       the coredns binary
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { ociArch } from '../helpers/oci-image.js';
import { COREDNS_VERSION, IMAGE_DIR, bin } from './paths.js';

export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10';
export const AGNHOST_IMAGE = 'registry.k8s.io/e2e-test-images/agnhost:2.52';
export const COREDNS_IMAGE = `registry.k8s.io/coredns/coredns:${COREDNS_VERSION}`;

const BUSYBOX = '/bin/busybox';
const BUSYBOX_APPLETS = [
  'sh', 'ash', 'cat', 'date', 'echo', 'env', 'false', 'grep', 'head', 'hostname', 'id', 'ip', 'kill', 'ls', 'mkdir',
  'nc', 'nslookup', 'ping', 'ps', 'rm', 'sed', 'sleep', 'tail', 'test', 'touch', 'true', 'wc',
];

export interface ImageFile {
  /** Path inside the image, absolute. */
  path: string;
  /** A host file to copy, or the content to write. */
  from?: string;
  content?: string;
  mode?: number;
}

export interface ImageSpec {
  ref: string;
  files: ImageFile[];
  dirs?: Array<{ path: string; mode?: number }>;
  /** [link path, target]. */
  symlinks?: Array<[string, string]>;
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workdir?: string;
}

const PAUSE_C = `// pause: holds a pod sandbox's namespaces; reaps orphans, exits on INT/TERM.
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGINT, quit);
  signal(SIGTERM, quit);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
`;

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function tarDir(dir: string, out: string): void {
  execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '--format=posix', '--pax-option=delete=atime,delete=ctime', '-C', dir, '-cf', out, '.'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 120_000,
  });
}

/** The pause binary, compiled once per source text. */
export function pauseBinary(): string {
  const out = join(IMAGE_DIR, `pause-${sha256(PAUSE_C).slice(0, 12)}`);
  if (existsSync(out)) return out;
  mkdirSync(IMAGE_DIR, { recursive: true });
  const src = `${out}.${process.pid}.c`;
  writeFileSync(src, PAUSE_C);
  try {
    execFileSync('gcc', ['-O2', '-Wall', '-Werror', '-static', '-s', '-o', `${out}.${process.pid}`, src], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
    renameSync(`${out}.${process.pid}`, out);
  } finally {
    rmSync(src, { force: true });
    rmSync(`${out}.${process.pid}`, { force: true });
  }
  return out;
}

function cacheKey(spec: ImageSpec): string {
  const files = spec.files.map((f) => {
    if (f.from === undefined) return f;
    const st = statSync(f.from);
    return { ...f, size: st.size, mtime: st.mtimeMs };
  });
  return sha256(JSON.stringify({ ...spec, files, arch: ociArch(), layout: 2 })).slice(0, 16);
}

function safeName(ref: string): string {
  return ref.replace(/[^a-zA-Z0-9._-]+/g, '_');
}

/** Builds (or finds in the cache) the archive of `spec`; returns its path. */
export function buildImage(spec: ImageSpec): string {
  const name = safeName(spec.ref);
  const archive = join(IMAGE_DIR, `${name}-${cacheKey(spec)}.tar`);
  if (existsSync(archive)) return archive;
  mkdirSync(IMAGE_DIR, { recursive: true });
  const work = join(IMAGE_DIR, `.build-${name}-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  try {
    const rootfs = join(work, 'rootfs');
    mkdirSync(rootfs, { recursive: true });
    for (const d of spec.dirs ?? []) {
      mkdirSync(join(rootfs, d.path), { recursive: true });
      if (d.mode !== undefined) chmodSync(join(rootfs, d.path), d.mode);
    }
    for (const f of spec.files) {
      const dst = join(rootfs, f.path);
      mkdirSync(dirname(dst), { recursive: true });
      if (f.from !== undefined) {
        try {
          linkSync(f.from, dst); // same filesystem as the binary cache: no copy
        } catch {
          copyFileSync(f.from, dst);
        }
      } else {
        writeFileSync(dst, f.content ?? '');
      }
      chmodSync(dst, f.mode ?? (f.from !== undefined ? 0o755 : 0o644));
    }
    for (const [link, target] of spec.symlinks ?? []) {
      mkdirSync(dirname(join(rootfs, link)), { recursive: true });
      symlinkSync(target, join(rootfs, link));
    }

    const layout = join(work, 'layout');
    const blobs = join(layout, 'blobs', 'sha256');
    mkdirSync(blobs, { recursive: true });
    const layerTar = join(work, 'layer.tar');
    tarDir(rootfs, layerTar);
    // Hash the layer streaming-free but without holding two copies: read once.
    const layerData = readFileSync(layerTar);
    const layerDigest = sha256(layerData);
    renameSync(layerTar, join(blobs, layerDigest));
    const put = (mediaType: string, data: Buffer) => {
      const digest = sha256(data);
      writeFileSync(join(blobs, digest), data);
      return { mediaType, digest: `sha256:${digest}`, size: data.length };
    };
    const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerDigest}`, size: layerData.length };
    const arch = ociArch();
    const config = put(
      'application/vnd.oci.image.config.v1+json',
      Buffer.from(
        JSON.stringify({
          created: '1970-01-01T00:00:00Z',
          architecture: arch,
          os: 'linux',
          config: {
            Env: spec.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
            ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
            ...(spec.cmd ? { Cmd: spec.cmd } : {}),
            WorkingDir: spec.workdir ?? '/',
          },
          rootfs: { type: 'layers', diff_ids: [layer.digest] },
          history: [{ created: '1970-01-01T00:00:00Z', created_by: 'sluice test/k8s/images.ts' }],
        }),
      ),
    );
    const manifest = put('application/vnd.oci.image.manifest.v1+json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer] })));
    writeFileSync(
      join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [{ ...manifest, platform: { architecture: arch, os: 'linux' }, annotations: { 'io.containerd.image.name': spec.ref, 'org.opencontainers.image.ref.name': spec.ref } }],
      }),
    );
    writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const tmp = `${archive}.${process.pid}.tmp`;
    tarDir(layout, tmp);
    renameSync(tmp, archive);
    // Older archives of the same image are stale now.
    for (const f of readdirSync(IMAGE_DIR)) if (f.startsWith(`${name}-`) && f.endsWith('.tar') && join(IMAGE_DIR, f) !== archive) rmSync(join(IMAGE_DIR, f), { force: true });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return archive;
}

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nuser-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
const GROUP = 'root:x:0:\nuser-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\nnogroup:x:65534:\n';

export function pauseSpec(): ImageSpec {
  return { ref: PAUSE_IMAGE, files: [{ path: '/pause', from: pauseBinary() }], entrypoint: ['/pause'] };
}

/** agnhost as upstream ships it (ENTRYPOINT /agnhost, CMD pause, the user and group e2e expects) with busybox for a shell. */
export function agnhostSpec(): ImageSpec {
  return {
    ref: AGNHOST_IMAGE,
    files: [
      { path: '/agnhost', from: bin('agnhost') },
      { path: '/bin/busybox', from: BUSYBOX },
      { path: '/etc/passwd', content: PASSWD },
      { path: '/etc/group', content: GROUP },
    ],
    dirs: [{ path: '/tmp', mode: 0o1777 }, { path: '/uploads' }, { path: '/root', mode: 0o700 }, { path: '/home/user-defined-in-image' }, { path: '/proc' }, { path: '/sys' }, { path: '/dev' }],
    symlinks: [['/agnhost-2', 'agnhost'], ...BUSYBOX_APPLETS.map((a): [string, string] => [`/bin/${a}`, 'busybox'])],
    entrypoint: ['/agnhost'],
    cmd: ['pause'],
  };
}

export function corednsSpec(): ImageSpec {
  return {
    ref: COREDNS_IMAGE,
    files: [{ path: '/coredns', from: bin('coredns') }, { path: '/etc/passwd', content: PASSWD }, { path: '/etc/group', content: GROUP }],
    dirs: [{ path: '/tmp', mode: 0o1777 }, { path: '/etc/coredns' }],
    entrypoint: ['/coredns'],
  };
}

/** The archives every node imports (built on first use, then cached). */
export function clusterImages(): Array<{ ref: string; archive: string }> {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} missing: apt-get install busybox-static`);
  return [pauseSpec(), agnhostSpec(), corednsSpec()].map((s) => ({ ref: s.ref, archive: buildImage(s) }));
}
