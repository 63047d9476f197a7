// A tiny OCI image built locally (no registry): one layer holding a static
// busybox and its applet symlinks, written as an OCI image layout and packed
// into a tar that `ctr images import` takes. Digests, sizes and diff_ids are
// computed here; only `tar` comes from the system (for the layer and the
// archive), gzip is node's zlib.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { sh } from './netns.js';

export const BUSYBOX_STATIC = '/bin/busybox';
export const BUSYBOX_APPLETS = ['sh', 'ip', 'ping', 'wget', 'sleep', 'cat', 'nc', 'httpd', 'ls', 'echo', 'hostname', 'true'];

const MT_INDEX = 'application/vnd.oci.image.index.v1+json';
const MT_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const MT_CONFIG = 'application/vnd.oci.image.config.v1+json';
const MT_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface BuiltImage {
  /** The image archive (an OCI layout in a tar). */
  archive: string;
  /** org.opencontainers.image.ref.name, the name ctr imports it under. */
  ref: string;
  manifest: Descriptor;
  config: Descriptor;
  layer: Descriptor;
  /** sha256 of the uncompressed layer tar. */
  diffId: string;
}

export function ociArch(arch: string = process.arch): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  const a = map[arch];
  if (!a) throw new Error(`no OCI architecture for ${arch}`);
  return a;
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Stores a blob under blobs/sha256 and returns its descriptor. */
function putBlob(layout: string, mediaType: string, data: Buffer): Descriptor {
  const digest = sha256(data);
  const dir = join(layout, 'blobs', 'sha256');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, digest.slice('sha256:'.length)), data);
  return { mediaType, digest, size: data.length };
}

/** Deterministic tar of a directory's contents (root-owned, mtime 0). */
function tarDir(dir: string, out: string): void {
  sh('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '--format=posix', '--pax-option=delete=atime,delete=ctime', '-C', dir, '-cf', out, '.']);
}

/**
 * Builds `<workDir>/image.tar` for `ref` (e.g. "localhost/slt-busybox:1"):
 * rootfs = /bin/busybox + applet symlinks + empty /etc /proc /sys /dev /tmp.
 */
export function buildBusyboxImage(workDir: string, ref: string, applets: string[] = BUSYBOX_APPLETS): BuiltImage {
  if (!existsSync(BUSYBOX_STATIC)) throw new Error(`${BUSYBOX_STATIC} missing: install busybox-static`);
  const rootfs = join(workDir, 'rootfs');
  const layout = join(workDir, 'layout');
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(BUSYBOX_STATIC, join(rootfs, 'bin', 'busybox'));
  for (const a of applets) symlinkSync('busybox', join(rootfs, 'bin', a));
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\n');

  const layerTar = join(workDir, 'layer.tar');
  tarDir(rootfs, layerTar);
  const uncompressed = readFileSync(layerTar);
  const diffId = sha256(uncompressed);
  mkdirSync(layout, { recursive: true });
  const layer = putBlob(layout, MT_LAYER_GZIP, gzipSync(uncompressed));

  const arch = ociArch();
  const configJson = {
    created: '1970-01-01T00:00:00Z',
    architecture: arch,
    os: 'linux',
    config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created: '1970-01-01T00:00:00Z', created_by: 'sluice test: busybox-static' }],
  };
  const config = putBlob(layout, MT_CONFIG, Buffer.from(JSON.stringify(configJson)));
  const manifestJson = { schemaVersion: 2, mediaType: MT_MANIFEST, config, layers: [layer] };
  const manifest = putBlob(layout, MT_MANIFEST, Buffer.from(JSON.stringify(manifestJson)));

  const index = {
    schemaVersion: 2,
    mediaType: MT_INDEX,
    manifests: [{ ...manifest, platform: { architecture: arch, os: 'linux' }, annotations: { 'org.opencontainers.image.ref.name': ref } }],
  };
  writeFileSync(join(layout, 'index.json'), JSON.stringify(index));
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));

  const archive = join(workDir, 'image.tar');
  tarDir(layout, archive);
  return { archive, ref, manifest, config, layer, diffId };
}
