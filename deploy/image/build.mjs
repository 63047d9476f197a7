#!/usr/bin/env node
// Builds the Sluice container image as a docker-archive (`make image`):
// build/image/sluice.tar, tagged sluice/sluice:VERSION, loadable with
// `ctr -n k8s.io images import` and `docker load`. No registry, no Docker
// daemon, no base image: the one layer holds this machine's Node binary and
// every shared library `ldd` lists for it and for the addon, the bundled CLI,
// the addon, the eBPF objects, sluice-cni and the conflist. Node's standard
// library only.
//
// The layer is deterministic (entries sorted, mtime 0, uid/gid 0, fixed
// modes), so building again from the same files gives the same digests.
//
// Image layout (the bundle finds the addon at <bundle dir>/../Release and the
// eBPF objects at <bundle dir>/../bpf, as it does in build/):
//   /usr/bin/node                      process.execPath
//   /usr/bin/env, /usr/bin/mount       `env -S` for the bundle's shebang; `mount -t bpf`
//                                      when the host has no bpffs at /sys/fs/bpf
//   /lib/…, /lib64/…                   their shared libraries, at the paths ldd names
//   /opt/sluice/bin/sluice             build/bin/sluice (also /usr/local/bin/sluice)
//   /opt/sluice/bin/sluice-cni         build/bin/sluice-cni (static)
//   /opt/sluice/bin/sluice-kube-client.cjs  the Kubernetes client, loaded in Kubernetes mode only
//   /opt/sluice/Release/sluice_native.node
//   /opt/sluice/bpf/*.o
//   /opt/sluice/cni-conf/10-sluice.conflist
//   /opt/sluice/package.json           {"type":"commonjs"} for the extension-less bundle
//
// Entrypoint: ["/usr/bin/node", <the node flags of the bundle's shebang>,
// "/opt/sluice/bin/sluice"], with the environment the shebang sets in Env;
// the DaemonSet passes the command as args (`agent …`, `install-cni`).
//
//   node deploy/image/build.mjs [--out FILE] [--tag REF] [--build-dir DIR]
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, realpathSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

export const IMAGE_NAME = 'sluice/sluice';
export const PREFIX = '/opt/sluice';
export const BUNDLE = `${PREFIX}/bin/sluice`;
export const NODE = '/usr/bin/node';
/** The same shebang src/config/node-flags.ts reads (the Makefile's AGENT_NODE_ENV and AGENT_NODE_FLAGS). */
const SHEBANG = /^#!\/usr\/bin\/env -S((?: [A-Z_][A-Z0-9_]*=[^\s]*)*) node((?: --[a-z0-9-]+(?:=[^\s]+)?)*)\s*$/;
/** Extra programs and where they go in the image: env for the bundle's shebang, mount for bpffs. */
const PROGRAMS = [
  ['/usr/bin/env', '/usr/bin/env'],
  ['/usr/bin/mount', '/usr/bin/mount'],
];

function usage() {
  return `Usage: node deploy/image/build.mjs [--out FILE] [--tag REF] [--build-dir DIR]
  --out FILE       the docker-archive to write (default build/image/sluice.tar)
  --tag REF        the image's RepoTag (default ${IMAGE_NAME}:<package.json version> = ${IMAGE_NAME}:${PKG.version})
  --build-dir DIR  where the build outputs are (default build)
`;
}

function parseArgv(argv) {
  const opts = { out: join(ROOT, 'build/image/sluice.tar'), tag: `${IMAGE_NAME}:${PKG.version}`, buildDir: join(ROOT, 'build') };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--out') opts.out = resolve(value());
    else if (flag === '--tag') opts.tag = value();
    else if (flag === '--build-dir') opts.buildDir = resolve(value());
    else if (flag === '--help' || flag === '-h') opts.help = true;
    else throw new Error(`unknown argument ${argv[i]}\n${usage()}`);
  }
  if (!/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*:[\w][\w.-]{0,127}$/.test(opts.tag)) {
    throw new Error(`--tag ${JSON.stringify(opts.tag)} is not NAME:TAG`);
  }
  return opts;
}

function ociArch(arch = process.arch) {
  const map = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  if (!map[arch]) throw new Error(`no OCI architecture for ${arch}`);
  return map[arch];
}

/** The node flags of the bundle's `#!/usr/bin/env -S node FLAGS` line. */
export function shebangNodeFlags(bundle) {
  return shebang(bundle)[2].trim().split(/\s+/).filter(Boolean);
}

/** The NAME=value pairs the bundle's shebang sets before node (the image's Env). */
export function shebangNodeEnv(bundle) {
  return shebang(bundle)[1].trim().split(/\s+/).filter(Boolean);
}

function shebang(bundle) {
  const first = readFileSync(bundle, 'utf8').split('\n', 1)[0];
  const m = SHEBANG.exec(first);
  if (!m) throw new Error(`${bundle}: first line ${JSON.stringify(first)} is not "#!/usr/bin/env -S [NAME=value …] node [FLAGS]"`);
  return m;
}

/** Shared libraries of an ELF file as `ldd` reports them: [path ldd names, loader?]. */
function sharedLibraries(file) {
  let out;
  try {
    out = execFileSync('ldd', [file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    // A static binary: ldd exits 1 with "not a dynamic executable".
    if (/not a dynamic executable|statically linked/.test(`${err.stdout}${err.stderr}`)) return [];
    throw new Error(`ldd ${file} failed: ${err.stderr || err.message}`);
  }
  const libs = [];
  for (const raw of out.split('\n')) {
    const line = raw.trim();
    if (!line || /^linux-(vdso|gate)\.so/.test(line) || line === 'statically linked') continue;
    if (line.includes('=> not found')) throw new Error(`ldd ${file}: ${line}`);
    const arrow = /=>\s*(\/\S+)/.exec(line);
    const plain = /^(\/\S+)\s*\(/.exec(line);
    const path = arrow?.[1] ?? plain?.[1];
    if (!path) throw new Error(`ldd ${file}: cannot read ${JSON.stringify(line)}`);
    libs.push(path);
  }
  return libs;
}

// ---------------------------------------------------------------- the layer

/**
 * Entries of the root filesystem: path (absolute, in the image) → { type,
 * mode, from (host file) | content (Buffer) | target (symlink) }.
 */
function rootfsEntries(opts) {
  const b = opts.buildDir;
  const need = (p, what) => {
    if (!existsSync(p)) throw new Error(`${p} missing (${what}): run \`make build\` first`);
    return p;
  };
  const entries = new Map();
  const dir = (path, mode = 0o755) => {
    for (let p = path; p !== '/'; p = posix.dirname(p)) if (!entries.has(p)) entries.set(p, { type: 'dir', mode: p === path ? mode : 0o755 });
  };
  const file = (path, from, mode) => {
    dir(posix.dirname(path));
    entries.set(path, { type: 'file', from, mode });
  };
  const content = (path, text, mode = 0o644) => {
    dir(posix.dirname(path));
    entries.set(path, { type: 'file', content: Buffer.from(text), mode });
  };
  const symlink = (path, target) => {
    dir(posix.dirname(path));
    entries.set(path, { type: 'symlink', target, mode: 0o777 });
  };

  const bundle = need(join(b, 'bin/sluice'), 'the bundled CLI');
  const addon = need(join(b, 'Release/sluice_native.node'), 'the native addon');
  const cniBin = need(join(b, 'bin/sluice-cni'), 'the CNI binary');
  const kubeClient = need(join(b, 'bin/sluice-kube-client.cjs'), 'the Kubernetes client bundle');
  const bpfDir = need(join(b, 'bpf'), 'the eBPF objects');
  const objects = readdirSync(bpfDir).filter((f) => f.endsWith('.o')).sort();
  if (!objects.length) throw new Error(`${bpfDir} holds no *.o: run \`make build\` first`);
  const conflist = need(join(ROOT, 'cni-conf/10-sluice.conflist'), 'the conflist');
  JSON.parse(readFileSync(conflist, 'utf8')); // never ship a broken conflist

  const node = realpathSync(process.execPath);
  file(NODE, node, 0o755);
  const elves = [node, addon];
  for (const [host, inImage] of PROGRAMS) {
    need(host, 'a program the image carries');
    file(inImage, realpathSync(host), 0o755);
    elves.push(host);
  }
  for (const elf of elves) {
    for (const lib of sharedLibraries(elf)) if (!entries.has(lib)) file(lib, realpathSync(lib), 0o755);
  }

  file(BUNDLE, bundle, 0o755);
  file(`${PREFIX}/bin/sluice-cni`, cniBin, 0o755);
  file(`${PREFIX}/bin/sluice-kube-client.cjs`, kubeClient, 0o644);
  file(`${PREFIX}/Release/sluice_native.node`, addon, 0o755);
  for (const o of objects) file(`${PREFIX}/bpf/${o}`, join(bpfDir, o), 0o644);
  file(`${PREFIX}/cni-conf/${basename(conflist)}`, conflist, 0o644);
  content(`${PREFIX}/package.json`, '{"type":"commonjs"}\n');
  symlink('/usr/local/bin/sluice', BUNDLE);
  symlink('/bin', 'usr/bin');
  symlink('/var/run', '../run');

  content('/etc/passwd', 'root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
  content('/etc/group', 'root:x:0:\nnogroup:x:65534:\n');
  content('/etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files dns\n');
  for (const d of ['/proc', '/sys', '/dev', '/run', '/root', '/var/lib', '/var/log']) dir(d, d === '/root' ? 0o700 : 0o755);
  dir('/tmp', 0o1777);
  return entries;
}

/** One 512-byte ustar header (uid/gid 0, mtime 0). */
function tarHeader(name, { type, mode, size = 0, target = '' }) {
  const h = Buffer.alloc(512);
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    // ustar: split at a slash into prefix (≤155 bytes) and name (≤100 bytes).
    const slashes = [...name.matchAll(/\//g)].map((m) => m.index).filter((i) => i > 0 && i < name.length - 1);
    const cut = slashes.reverse().find((i) => Buffer.byteLength(name.slice(0, i)) <= 155 && Buffer.byteLength(name.slice(i + 1)) <= 100);
    if (cut === undefined) throw new Error(`path too long for ustar: ${name}`);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  if (Buffer.byteLength(target) > 100) throw new Error(`symlink target too long: ${target}`);
  const put = (s, off, len) => h.write(s, off, len, 'utf8');
  const octal = (n, off, len) => put(n.toString(8).padStart(len - 1, '0'), off, len - 1);
  put(name, 0, 100);
  octal(mode & 0o7777, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  if (size > 0o77777777777) throw new Error(`${name}: too large for ustar`);
  octal(size, 124, 12);
  octal(0, 136, 12);
  h.fill(' ', 148, 156);
  put({ file: '0', symlink: '2', dir: '5' }[type], 156, 1);
  put(target, 157, 100);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put('root', 265, 32);
  put('root', 297, 32);
  put(prefix, 345, 155);
  let sum = 0;
  for (const byte of h) sum += byte;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return h;
}

/** Writes tar entries to `fd`, hashing every byte; returns the sha256 hex and the size. */
class TarWriter {
  constructor(fd) {
    this.fd = fd;
    this.hash = createHash('sha256');
    this.size = 0;
  }
  write(buf) {
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
    this.hash.update(buf);
    this.size += buf.length;
  }
  pad(n) {
    const rest = n % 512;
    if (rest) this.write(Buffer.alloc(512 - rest));
  }
  entry(name, meta, body) {
    this.write(tarHeader(name, meta));
    if (body) body(this);
    this.pad(meta.size ?? 0);
  }
  /** Copies a whole file (whose size is `size`) into the archive. */
  copyFrom(path, size) {
    const fd = openSync(path, 'r');
    try {
      if (fstatSync(fd).size !== size) throw new Error(`${path} changed size while building`);
      const buf = Buffer.allocUnsafe(1 << 20);
      let done = 0;
      while (done < size) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, size - done), done);
        if (n === 0) throw new Error(`${path} shrank while building`);
        this.write(buf.subarray(0, n));
        done += n;
      }
    } finally {
      closeSync(fd);
    }
  }
  finish() {
    this.write(Buffer.alloc(1024));
    return { digest: this.hash.digest('hex'), size: this.size };
  }
}

function writeLayer(entries, path) {
  const fd = openSync(path, 'w', 0o644);
  try {
    const tar = new TarWriter(fd);
    // Sorted by path so a parent always precedes its children ('/' < any name byte here).
    for (const p of [...entries.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
      const e = entries.get(p);
      const name = p.slice(1) + (e.type === 'dir' ? '/' : '');
      if (e.type === 'dir') tar.entry(name, { type: 'dir', mode: e.mode });
      else if (e.type === 'symlink') tar.entry(name, { type: 'symlink', mode: e.mode, target: e.target });
      else if (e.content) tar.entry(name, { type: 'file', mode: e.mode, size: e.content.length }, (t) => t.write(e.content));
      else {
        const size = statSync(e.from).size;
        tar.entry(name, { type: 'file', mode: e.mode, size }, (t) => t.copyFrom(e.from, size));
      }
    }
    return tar.finish();
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------- the archive

export function buildImage(opts) {
  const entries = rootfsEntries(opts);
  const nodeFlags = shebangNodeFlags(join(opts.buildDir, 'bin/sluice'));
  const nodeEnv = shebangNodeEnv(join(opts.buildDir, 'bin/sluice'));
  mkdirSync(dirname(opts.out), { recursive: true });
  const layerTmp = `${opts.out}.layer.${process.pid}.tmp`;
  const outTmp = `${opts.out}.${process.pid}.tmp`;
  try {
    const layer = writeLayer(entries, layerTmp);
    const diffId = `sha256:${layer.digest}`;
    const version = opts.tag.slice(opts.tag.lastIndexOf(':') + 1);
    const epoch = '1970-01-01T00:00:00Z';
    const config = {
      architecture: ociArch(),
      os: 'linux',
      created: epoch,
      config: {
        Entrypoint: [NODE, ...nodeFlags, BUNDLE],
        Cmd: ['--help'],
        Env: ['PATH=/usr/local/bin:/usr/bin:/bin', ...nodeEnv],
        WorkingDir: '/',
        Labels: {
          'org.opencontainers.image.title': 'sluice',
          'org.opencontainers.image.description': PKG.description,
          'org.opencontainers.image.version': version,
          'org.opencontainers.image.licenses': PKG.license,
        },
      },
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created: epoch, created_by: `deploy/image/build.mjs: node ${process.version}, sluice ${PKG.version}` }],
    };
    const configJson = Buffer.from(JSON.stringify(config));
    const configHex = createHash('sha256').update(configJson).digest('hex');
    const layerPath = `${layer.digest}/layer.tar`;
    const manifest = Buffer.from(JSON.stringify([{ Config: `${configHex}.json`, RepoTags: [opts.tag], Layers: [layerPath] }]));
    const colon = opts.tag.lastIndexOf(':');
    const repositories = Buffer.from(JSON.stringify({ [opts.tag.slice(0, colon)]: { [version]: layer.digest } }));

    const fd = openSync(outTmp, 'w', 0o644);
    try {
      const tar = new TarWriter(fd);
      tar.entry(`${layer.digest}/`, { type: 'dir', mode: 0o755 });
      tar.entry(layerPath, { type: 'file', mode: 0o644, size: layer.size }, (t) => t.copyFrom(layerTmp, layer.size));
      tar.entry(`${configHex}.json`, { type: 'file', mode: 0o644, size: configJson.length }, (t) => t.write(configJson));
      tar.entry('manifest.json', { type: 'file', mode: 0o644, size: manifest.length }, (t) => t.write(manifest));
      tar.entry('repositories', { type: 'file', mode: 0o644, size: repositories.length }, (t) => t.write(repositories));
      tar.finish();
    } finally {
      closeSync(fd);
    }
    renameSync(outTmp, opts.out);
    return { out: opts.out, tag: opts.tag, imageId: `sha256:${configHex}`, diffId, layerSize: layer.size, entrypoint: config.config.Entrypoint, files: entries.size };
  } finally {
    rmSync(layerTmp, { force: true });
    rmSync(outTmp, { force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const opts = parseArgv(process.argv.slice(2));
    if (opts.help) {
      process.stdout.write(usage());
    } else {
      const r = buildImage(opts);
      process.stdout.write(
        `${r.out}: ${r.tag}, image id ${r.imageId}\n` +
          `  layer ${r.diffId}, ${(r.layerSize / 1048576).toFixed(1)} MiB, ${r.files} entries\n` +
          `  entrypoint ${JSON.stringify(r.entrypoint)}\n` +
          `  load with: ctr -n k8s.io images import ${r.out}   (or: docker load -i ${r.out})\n`,
      );
    }
  } catch (err) {
    process.stderr.write(`build.mjs: ${err.message}\n`);
    process.exitCode = 1;
  }
}
