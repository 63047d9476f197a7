// The container image (deploy/image/build.mjs, `make image`) through a real
// runtime: built from build/ into a temp dir (twice: the same bytes both
// times), imported into a private containerd (test/helpers/containerd.ts,
// never the system one) as a docker-archive, then run: `sluice --version`
// through the bundle's shebang (PATH, /usr/bin/env -S), the image's
// entrypoint as Kubernetes runs it, `sluice install-cni` into temp dirs
// mounted where the DaemonSet mounts the host's CNI dirs, and the agent
// itself (privileged, in a test netns, on a test bpffs dir): the addon and
// its libraries load, the eBPF object passes the verifier, `sluice status`
// answers from inside the container.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeEnvOf, nodeFlagsOf } from '../../src/config/index.js';
import { Containerd } from '../helpers/containerd.js';
import { Cleanup, uniqueName, type Netns } from '../helpers/netns.js';

const ROOT = join(import.meta.dirname, '..', '..');
const BUILDER = join(ROOT, 'deploy/image/build.mjs');
const SLUICE = join(ROOT, 'build/bin/sluice');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const TAG = `sluice/sluice:${VERSION}`;
/** What containerd calls a docker-archive's `sluice/sluice:V` (the name kubelet resolves the DaemonSet's image to). */
const REF = `docker.io/${TAG}`;

const cleanup = new Cleanup();
let dir: string;
let ctrd: Containerd;
let archive: string;
let runs = 0;

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

function build(out: string): string {
  const r = spawnSync(process.execPath, [BUILDER, '--out', out], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`build.mjs failed (${r.status}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** `ctr run --rm IMAGE ID ARGS…` in the foreground; its output. */
function run(args: string[], opts: string[] = []): { status: number; out: string } {
  runs += 1;
  const r = ctrd.ctr(['run', '--rm', ...ctrd.runFlags, ...opts, REF, `slt-img-${process.pid}-${runs}`, ...args], { timeoutMs: 60_000 });
  return { status: r.status, out: r.stdout + r.stderr };
}

const bind = (src: string, dst: string, mode = 'rw') => ['--mount', `type=bind,src=${src},dst=${dst},options=rbind:${mode}`];

beforeAll(async () => {
  for (const f of ['build/bin/sluice', 'build/bin/sluice-cni', 'build/Release/sluice_native.node', 'build/bpf/sluice.o']) {
    if (!existsSync(join(ROOT, f))) throw new Error(`${f} missing: run make build`);
  }
  dir = mkdtempSync(join(tmpdir(), 'slt-image-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  archive = join(dir, 'a', 'sluice.tar');
  build(archive);
  ctrd = new Containerd(cleanup);
  await ctrd.start();
  ctrd.importImage(archive);
}, 120_000);

afterAll(() => cleanup.run());

describe('make image (deploy/image/build.mjs)', () => {
  it('is deterministic: a second build gives the same bytes', () => {
    const again = join(dir, 'b', 'sluice.tar');
    build(again);
    expect(sha256(again)).toBe(sha256(archive));
  });

  it('writes a docker-archive tagged with package.json\'s version; containerd imports it under the name kubelet asks for', () => {
    const listing = spawnSync('tar', ['-tf', archive], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    expect(listing).toContain('manifest.json');
    const manifest = JSON.parse(spawnSync('tar', ['-xOf', archive, 'manifest.json'], { encoding: 'utf8' }).stdout) as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
    expect(manifest).toHaveLength(1);
    expect(manifest[0]!.RepoTags).toEqual([TAG]);
    expect(ctrd.imageRefs()).toContain(REF);
    expect(ctrd.ctrOk(['images', 'check'])).toMatch(new RegExp(`${REF.replace(/[.]/g, '\\.')}\\s.*complete`));
  });

  it('has the node flags of the bundle\'s shebang in its entrypoint, and the environment it sets in Env', () => {
    const manifest = JSON.parse(spawnSync('tar', ['-xOf', archive, 'manifest.json'], { encoding: 'utf8' }).stdout) as Array<{ Config: string }>;
    const config = JSON.parse(spawnSync('tar', ['-xOf', archive, manifest[0]!.Config], { encoding: 'utf8' }).stdout);
    expect(nodeFlagsOf(SLUICE)).not.toEqual([]);
    expect(config.config.Entrypoint).toEqual(['/usr/bin/node', ...nodeFlagsOf(SLUICE), '/opt/sluice/bin/sluice']);
    expect(nodeEnvOf(SLUICE)).toEqual({ MALLOC_ARENA_MAX: '2' });
    expect(config.config.Env).toEqual(['PATH=/usr/local/bin:/usr/bin:/bin', 'MALLOC_ARENA_MAX=2']);
    expect(config.rootfs.diff_ids).toHaveLength(1);
  });
});

describe('the image, run by containerd', () => {
  it('runs `sluice --version` through the shebang (/usr/bin/env -S node …)', () => {
    const r = run(['sluice', '--version']);
    expect(r.status, r.out).toBe(0);
    expect(r.out.trim()).toBe(`sluice ${VERSION}`);
  });

  it('runs the entrypoint as the DaemonSet does (args after it)', () => {
    const r = run(['/usr/bin/node', ...nodeFlagsOf(SLUICE), '/opt/sluice/bin/sluice', 'agent', '--help']);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/^Usage: sluice agent/);
  });

  it('runs `sluice install-cni` into the directories the DaemonSet mounts', () => {
    const bin = join(dir, 'host/opt/cni/bin');
    const conf = join(dir, 'host/etc/cni/net.d');
    mkdirSync(bin, { recursive: true });
    mkdirSync(conf, { recursive: true });
    const mounts = [...bind(bin, '/host/opt/cni/bin'), ...bind(conf, '/host/etc/cni/net.d')];
    const first = run(['sluice', 'install-cni'], mounts);
    expect(first.status, first.out).toBe(0);
    expect(first.out).toContain('installed /host/opt/cni/bin/sluice-cni (from /opt/sluice/bin/sluice-cni)');
    expect(readFileSync(join(bin, 'sluice-cni'))).toEqual(readFileSync(join(ROOT, 'build/bin/sluice-cni')));
    expect(statSync(join(bin, 'sluice-cni')).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(conf, '10-sluice.conflist'))).toEqual(readFileSync(join(ROOT, 'cni-conf/10-sluice.conflist')));
    const second = run(['sluice', 'install-cni'], mounts);
    expect(second.status, second.out).toBe(0);
    expect(second.out).toContain('unchanged /host/etc/cni/net.d/10-sluice.conflist');
  });

  it('starts the agent: addon, libbpf and the eBPF object load; `sluice status` answers inside the container', async () => {
    const netns: Netns = cleanup.netns('img');
    const bpffs = `/sys/fs/bpf/${uniqueName('ib')}`;
    mkdirSync(bpffs);
    cleanup.add(() => rmSync(bpffs, { recursive: true, force: true }));
    const host = join(dir, 'agent');
    for (const d of ['run', 'state', 'manifests']) mkdirSync(join(host, d), { recursive: true });
    const id = `slt-img-${process.pid}-agent`;
    const logFile = join(dir, 'agent.log');
    const log = createWriteStream(logFile);
    await new Promise((r) => log.once('open', r));
    const child: ChildProcess = spawn(
      'ctr',
      [
        '--address', ctrd.address, '--namespace', ctrd.namespace,
        'run', '--rm', ...ctrd.runFlags, '--privileged', '--with-ns', `network:${netns.path}`,
        ...bind(bpffs, '/bpf'), ...bind(join(host, 'run'), '/run/sluice'), ...bind(join(host, 'state'), '/var/lib/sluice'), ...bind(join(host, 'manifests'), '/etc/sluice', 'ro'),
        // The host's cgroup hierarchy, where the DaemonSet mounts it (Service translation attaches there).
        ...bind('/sys/fs/cgroup', '/host/sys/fs/cgroup', 'ro'),
        REF, id,
        '/usr/bin/node', ...nodeFlagsOf(SLUICE), '/opt/sluice/bin/sluice', 'agent',
        '--standalone', '/etc/sluice', '--node-name', 'img', '--pod-cidr', '10.71.0.0/24', '--bpffs', '/bpf', '--dns-trusted', '10.71.255.53', '--cgroup-root', '/host/sys/fs/cgroup',
      ],
      { stdio: ['ignore', log, log] },
    );
    cleanup.add(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const output = () => readFileSync(logFile, 'utf8');
    const deadline = Date.now() + 30_000;
    while (!output().includes('"agent ready"')) {
      if (child.exitCode !== null) throw new Error(`the agent's container exited ${child.exitCode}:\n${output()}`);
      if (Date.now() > deadline) throw new Error(`the agent did not become ready:\n${output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(existsSync(join(host, 'run/agent.sock'))).toBe(true);
    expect(existsSync(bpffs) && spawnSync('ls', [bpffs], { encoding: 'utf8' }).stdout.trim()).toBeTruthy(); // pinned maps

    const status = ctrd.ctr(['tasks', 'exec', '--exec-id', 'status', '--fifo-dir', join(ctrd.dir, 'fifo'), id, 'sluice', 'status', '-o', 'json']);
    expect(status.status, status.stderr + status.stdout).toBe(0);
    expect(() => JSON.parse(status.stdout)).not.toThrow();

    const exited = new Promise((r) => child.once('exit', r));
    ctrd.ctrOk(['tasks', 'kill', '--signal', 'SIGTERM', id]);
    await exited;
    expect(output()).toContain('stopping; the datapath keeps enforcing');
  }, 60_000);
});
