// `sluice install-cni` (src/cli/install-cni.ts), the DaemonSet's init step,
// against temp directories only: never the host's /etc/cni or /opt/cni.
import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  IMAGE_CNI_BINARY,
  IMAGE_CONFLIST,
  InstallCniError,
  installCni,
  parseInstallCniArgs,
  type InstallCniOptions,
} from '../../src/cli/install-cni.js';
import { nodeFlagsOf, UsageError } from '../../src/config/index.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SLUICE = join(ROOT, 'build/bin/sluice');
const CONFLIST = join(ROOT, 'cni-conf/10-sluice.conflist');

let dir: string;
let opts: InstallCniOptions;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'slt-install-cni-'));
  for (const d of ['src', 'host/opt/cni/bin', 'host/etc/cni/net.d']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'src/sluice-cni'), '#!/bin/sh\necho v1\n');
  writeFileSync(join(dir, 'src/10-sluice.conflist'), readFileSync(CONFLIST));
  opts = {
    cniBinDir: join(dir, 'host/opt/cni/bin'),
    cniConfDir: join(dir, 'host/etc/cni/net.d'),
    cniBinary: join(dir, 'src/sluice-cni'),
    conflist: join(dir, 'src/10-sluice.conflist'),
  };
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

const bin = () => join(opts.cniBinDir, 'sluice-cni');
const conf = () => join(opts.cniConfDir, '10-sluice.conflist');
const mode = (p: string) => statSync(p).mode & 0o7777;

describe('installCni', () => {
  it('installs the plugin (0755) and the conflist (0644) and leaves no temp file', () => {
    const r = installCni(opts);
    expect(r.binary).toEqual({ path: bin(), changed: true });
    expect(r.conflist).toEqual({ path: conf(), changed: true });
    expect(r.shadowedBy).toEqual([]);
    expect(readFileSync(bin(), 'utf8')).toBe('#!/bin/sh\necho v1\n');
    expect(mode(bin())).toBe(0o755);
    expect(readFileSync(conf())).toEqual(readFileSync(CONFLIST));
    expect(mode(conf())).toBe(0o644);
    expect(readdirSync(opts.cniBinDir)).toEqual(['sluice-cni']);
    expect(readdirSync(opts.cniConfDir)).toEqual(['10-sluice.conflist']);
  });

  it('is idempotent: a second run changes nothing (same inodes)', () => {
    installCni(opts);
    const inodes = [statSync(bin()).ino, statSync(conf()).ino];
    const r = installCni(opts);
    expect(r.binary.changed).toBe(false);
    expect(r.conflist.changed).toBe(false);
    expect([statSync(bin()).ino, statSync(conf()).ino]).toEqual(inodes);
  });

  it('replaces a changed file by rename: a process holding the old plugin keeps reading the old bytes', () => {
    installCni(opts);
    const oldIno = statSync(bin()).ino;
    const held = openSync(bin(), 'r'); // a runtime executing the old plugin
    try {
      writeFileSync(opts.cniBinary, '#!/bin/sh\necho v2 -- longer than before\n');
      const r = installCni(opts);
      expect(r.binary.changed).toBe(true);
      expect(r.conflist.changed).toBe(false);
      expect(statSync(bin()).ino).not.toBe(oldIno);
      expect(readFileSync(bin(), 'utf8')).toContain('v2');
      const buf = Buffer.alloc(64);
      const n = readSync(held, buf, 0, buf.length, 0);
      expect(buf.subarray(0, n).toString()).toBe('#!/bin/sh\necho v1\n');
    } finally {
      closeSync(held);
    }
  });

  it('fixes a wrong mode on an otherwise identical file', () => {
    installCni(opts);
    chmodSync(bin(), 0o644);
    expect(installCni(opts).binary.changed).toBe(true);
    expect(mode(bin())).toBe(0o755);
  });

  it('removes temp files a killed earlier run left, and only those', () => {
    writeFileSync(join(opts.cniBinDir, '.sluice-cni.sluice-tmp-1234-deadbeef'), 'partial');
    writeFileSync(join(opts.cniBinDir, 'bridge'), 'someone else\'s plugin');
    installCni(opts);
    expect(readdirSync(opts.cniBinDir).sort()).toEqual(['bridge', 'sluice-cni']);
  });

  it('warns (shadowedBy) about configs the runtime would pick first', () => {
    writeFileSync(join(opts.cniConfDir, '05-other.conflist'), '{}');
    writeFileSync(join(opts.cniConfDir, '99-loopback.conf'), '{}');
    writeFileSync(join(opts.cniConfDir, 'README'), 'not a config');
    expect(installCni(opts).shadowedBy).toEqual(['05-other.conflist']);
  });

  it('--cni-version rewrites the installed conflist\'s cniVersion only, and is idempotent', () => {
    const src = JSON.parse(readFileSync(CONFLIST, 'utf8')) as Record<string, unknown>;
    const r = installCni({ ...opts, cniVersion: '1.0.0' });
    expect(r.conflist.changed).toBe(true);
    const got = JSON.parse(readFileSync(r.conflist.path, 'utf8')) as Record<string, unknown>;
    expect(got).toEqual({ ...src, cniVersion: '1.0.0' });
    expect(installCni({ ...opts, cniVersion: '1.0.0' }).conflist.changed).toBe(false);
    expect(() => parseInstallCniArgs(['--cni-version=2.0.0'], {})).toThrow(UsageError);
  });

  it('fails clearly, writing nothing, when a source is missing or the conflist is broken', () => {
    expect(() => installCni({ ...opts, cniBinary: join(dir, 'nope') })).toThrow(/cannot read CNI plugin .*nope: ENOENT/);
    writeFileSync(opts.conflist, '{"cniVersion": "1.1.0", "name": ');
    expect(() => installCni(opts)).toThrow(/10-sluice\.conflist is not valid JSON/);
    writeFileSync(opts.conflist, '{"cniVersion": "1.1.0", "name": "sluice"}');
    expect(() => installCni(opts)).toThrow(/is not a CNI conflist/);
    expect(readdirSync(opts.cniBinDir)).toEqual([]);
    expect(readdirSync(opts.cniConfDir)).toEqual([]);
  });

  it('fails clearly when a target directory is not mounted or not writable', () => {
    expect(() => installCni({ ...opts, cniConfDir: join(dir, 'host/etc/cni/missing') })).toThrow(InstallCniError);
    expect(() => installCni({ ...opts, cniConfDir: join(dir, 'host/etc/cni/missing') })).toThrow(/--cni-conf-dir .*missing: ENOENT.*is the host directory mounted there/);
    expect(() => installCni({ ...opts, cniBinDir: opts.cniBinary })).toThrow(/--cni-bin-dir .* is not a directory/);
    // A directory where the plugin should be: the rename fails, no temp file stays.
    mkdirSync(bin());
    expect(() => installCni(opts)).toThrow(/cannot install .*sluice-cni: E(ISDIR|EXIST|NOTEMPTY)/);
    expect(readdirSync(opts.cniBinDir)).toEqual(['sluice-cni']);
  });
});

describe('parseInstallCniArgs', () => {
  it('defaults to the image layout and the /host mounts, never the host paths themselves', () => {
    const o = parseInstallCniArgs([], {})!;
    expect(o).toEqual({ cniBinDir: '/host/opt/cni/bin', cniConfDir: '/host/etc/cni/net.d', cniBinary: IMAGE_CNI_BINARY, conflist: IMAGE_CONFLIST });
    expect(IMAGE_CNI_BINARY).toBe('/opt/sluice/bin/sluice-cni');
    expect(IMAGE_CONFLIST).toBe('/opt/sluice/cni-conf/10-sluice.conflist');
  });

  it('takes flags and SLUICE_* variables; --help; rejects extras', () => {
    expect(parseInstallCniArgs(['--cni-bin-dir', '/a', '--cni-conf-dir=/b'], { SLUICE_CONFLIST: '/c.conflist' })).toMatchObject({ cniBinDir: '/a', cniConfDir: '/b', conflist: '/c.conflist' });
    expect(parseInstallCniArgs(['--help'], {})).toBeUndefined();
    expect(() => parseInstallCniArgs(['extra'], {})).toThrow(UsageError);
    expect(() => parseInstallCniArgs(['--cni-bin-dir='], {})).toThrow(/--cni-bin-dir must not be empty/);
    expect(() => parseInstallCniArgs(['--bogus'], {})).toThrow(/unknown flag --bogus/);
  });
});

describe('sluice install-cni (the bundle)', () => {
  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, [...nodeFlagsOf(SLUICE), SLUICE, 'install-cni', ...args], { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH } });
    return { status: r.status, out: r.stdout, err: r.stderr };
  };
  const flags = () => ['--cni-bin-dir', opts.cniBinDir, '--cni-conf-dir', opts.cniConfDir, '--cni-binary', opts.cniBinary, '--conflist', opts.conflist];

  it('is built', () => expect(existsSync(SLUICE), `${SLUICE} missing: run make bundle`).toBe(true));

  it('installs, then reports unchanged; exit 0', () => {
    const first = run(...flags());
    expect(first.status, first.err).toBe(0);
    expect(first.out).toBe(`installed ${bin()} (from ${opts.cniBinary})\ninstalled ${conf()} (from ${opts.conflist})\n`);
    const second = run(...flags());
    expect(second.status, second.err).toBe(0);
    expect(second.out).toBe(`unchanged ${bin()}\nunchanged ${conf()}\n`);
  });

  it('warns about a config that sorts first, still exit 0', () => {
    writeFileSync(join(opts.cniConfDir, '00-other.conflist'), '{}');
    const r = run(...flags());
    expect(r.status).toBe(0);
    expect(r.err).toMatch(/warning: 00-other\.conflist in .* sort\(s\) before 10-sluice\.conflist/);
  });

  it('exit 1 with the reason on a failure, 2 on a usage error; --help exit 0', () => {
    const missing = run(...flags(), '--cni-conf-dir', join(dir, 'nowhere'));
    expect(missing.status).toBe(1);
    expect(missing.err).toMatch(/^sluice install-cni: --cni-conf-dir .*nowhere: ENOENT/);
    expect(readdirSync(opts.cniBinDir)).toEqual([]);
    const usage = run('--nope');
    expect(usage.status).toBe(2);
    expect(usage.err).toMatch(/unknown flag --nope/);
    const help = run('--help');
    expect(help.status).toBe(0);
    expect(help.out).toMatch(/^Usage: sluice install-cni/);
    expect(help.out).toContain('/host/opt/cni/bin');
  });
});
