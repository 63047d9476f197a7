// `sluice install-cni`: the DaemonSet's init step (deploy/03-daemonset.yaml).
// Installs sluice-cni into the host's CNI plugin directory and the conflist
// into the host's CNI config directory, each atomically: written to a temp
// file in the target directory, fsynced, chmodded, then renamed over the old
// one (a binary a runtime is executing is never overwritten in place, and a
// runtime never reads half a conflist), then the directory is fsynced. A file
// already identical is left alone, so running it again changes nothing.
// The plugin goes first: once the conflist lands the runtime starts calling it.
import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { formatFlags, parseArgs, UsageError, type FlagSpec } from '../config/index.js';

/** Where the image (deploy/image/build.mjs) puts the sources. */
export const IMAGE_CNI_BINARY = '/opt/sluice/bin/sluice-cni';
export const IMAGE_CONFLIST = '/opt/sluice/cni-conf/10-sluice.conflist';

const FLAGS: readonly FlagSpec[] = [
  { name: 'cni-bin-dir', help: 'the host\'s CNI plugin directory, as mounted in this container', default: '/host/opt/cni/bin' },
  { name: 'cni-conf-dir', help: 'the host\'s CNI config directory, as mounted in this container', default: '/host/etc/cni/net.d' },
  { name: 'cni-binary', help: 'the plugin to install (installed under its own file name)', default: IMAGE_CNI_BINARY },
  { name: 'conflist', help: 'the conflist to install (installed under its own file name)', default: IMAGE_CONFLIST },
  {
    name: 'cni-version',
    help: 'cniVersion to write into the installed conflist (the runtime must read results of that version: containerd < 1.7 and CRI-O < 1.28 read up to 1.0.0); empty: as in the conflist',
    default: '',
  },
  { name: 'help', short: 'h', help: 'show this help', boolean: true },
];

export const INSTALL_CNI_USAGE = `Usage: sluice install-cni [flags]

Installs the CNI plugin and its conflist on the node: the init step of the
DaemonSet, which mounts the host's /opt/cni/bin and /etc/cni/net.d at
/host/opt/cni/bin and /host/etc/cni/net.d. Each file is written to a temp file
in the target directory, fsynced and renamed over the old one, so a runtime
never runs a half-written plugin or reads a half-written conflist, and a plugin
in use is never overwritten in place. The plugin is installed before the
conflist. Identical files are left alone; running it again changes nothing.

The runtime uses the config file that sorts first in its config directory: a
warning names any other config that sorts before ours.

Exit status: 0 installed or already up to date, 1 failed (nothing half-written
is left behind), 2 usage error.

Flags:
${formatFlags(FLAGS)}
`;

export interface InstallCniOptions {
  cniBinDir: string;
  cniConfDir: string;
  cniBinary: string;
  conflist: string;
  /** Rewrite the conflist's cniVersion to this. */
  cniVersion?: string;
}

export interface InstalledFile {
  path: string;
  /** false: the file was already identical (and had the right mode). */
  changed: boolean;
}

export interface InstallCniResult {
  binary: InstalledFile;
  conflist: InstalledFile;
  /** Config files in the conf dir that the runtime would pick before ours. */
  shadowedBy: string[];
}

export class InstallCniError extends Error {
  override readonly name = 'InstallCniError';
  readonly code = 'SLUICE_INSTALL_CNI';
}

/** undefined: --help was asked for. */
export function parseInstallCniArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): InstallCniOptions | undefined {
  const { flags, positional } = parseArgs(argv, FLAGS, env);
  if (flags.help === 'true') return undefined;
  if (positional.length) throw new UsageError(`unexpected argument ${positional[0]}`);
  for (const f of ['cni-bin-dir', 'cni-conf-dir', 'cni-binary', 'conflist']) {
    if (!flags[f]) throw new UsageError(`--${f} must not be empty`);
  }
  const cniVersion = flags['cni-version'] ?? '';
  if (cniVersion && !CNI_VERSIONS.includes(cniVersion)) throw new UsageError(`--cni-version must be one of ${CNI_VERSIONS.join(', ')}, not ${JSON.stringify(cniVersion)}`);
  return { cniBinDir: flags['cni-bin-dir']!, cniConfDir: flags['cni-conf-dir']!, cniBinary: flags['cni-binary']!, conflist: flags.conflist!, ...(cniVersion ? { cniVersion } : {}) };
}

function why(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code ? `${e.code}${e.message ? ` (${e.message.replace(/^[A-Z]+: /, '')})` : ''}` : String((err as Error)?.message ?? err);
}

function readSource(path: string, what: string): Buffer {
  try {
    if (!statSync(path).isFile()) throw new InstallCniError(`${what} ${path} is not a regular file`);
    return readFileSync(path);
  } catch (err) {
    if (err instanceof InstallCniError) throw err;
    throw new InstallCniError(`cannot read ${what} ${path}: ${why(err)}`);
  }
}

function requireDir(dir: string, flag: string): void {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    throw new InstallCniError(`--${flag} ${dir}: ${why(err)} (is the host directory mounted there?)`);
  }
  if (!isDir) throw new InstallCniError(`--${flag} ${dir} is not a directory`);
}

/** Whether `path` already holds exactly `data` with permission bits `mode`. */
function identical(path: string, data: Buffer, mode: number): boolean {
  try {
    const st = statSync(path);
    return st.isFile() && (st.mode & 0o7777) === mode && st.size === data.length && readFileSync(path).equals(data);
  } catch {
    return false;
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The versions sluice-cni answers in (PRODUCT.md §2). */
const CNI_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

/** Temp files of ours a killed earlier run may have left: `.<name>.sluice-tmp-*`. */
const TMP_MARK = '.sluice-tmp-';

function removeStaleTemps(dir: string, name: string): void {
  for (const entry of readdirSync(dir)) {
    if (entry.startsWith(`.${name}${TMP_MARK}`)) rmSync(join(dir, entry), { force: true });
  }
}

/**
 * Writes `data` to `dir/name` atomically: a temp file in `dir` (same
 * filesystem; a name no runtime reads: it starts with a dot and does not end
 * in .conf/.conflist/.json), written, chmodded and fsynced, renamed over the
 * target, then `dir` fsynced.
 */
export function installFileAtomically(dir: string, name: string, data: Buffer, mode: number): InstalledFile {
  const target = join(dir, name);
  if (identical(target, data, mode)) return { path: target, changed: false };
  removeStaleTemps(dir, name);
  const tmp = join(dir, `.${name}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
  let fd: number;
  try {
    fd = openSync(tmp, 'wx', 0o600);
  } catch (err) {
    throw new InstallCniError(`cannot write in ${dir}: ${why(err)}`);
  }
  try {
    try {
      for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
      fchmodSync(fd, mode);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
    fsyncDir(dir);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new InstallCniError(`cannot install ${target}: ${why(err)}`);
  }
  return { path: target, changed: true };
}

/** CNI config files as libcni finds them (.conf, .conflist, .json), sorted as it sorts them. */
function cniConfigFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /\.(conf|conflist|json)$/.test(f) && !f.startsWith('.'))
    .sort();
}

/** Checks the conflist is one a runtime can use: JSON with a name and a sluice-cni plugin. */
function checkConflist(data: Buffer, path: string): void {
  let conf: unknown;
  try {
    conf = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new InstallCniError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  const c = conf as { name?: unknown; cniVersion?: unknown; plugins?: unknown };
  if (typeof c?.name !== 'string' || typeof c.cniVersion !== 'string' || !Array.isArray(c.plugins) || c.plugins.length === 0) {
    throw new InstallCniError(`${path} is not a CNI conflist (needs cniVersion, name and a non-empty plugins list)`);
  }
}

export function installCni(opts: InstallCniOptions): InstallCniResult {
  const binary = readSource(opts.cniBinary, 'CNI plugin');
  let conflist = readSource(opts.conflist, 'conflist');
  checkConflist(conflist, opts.conflist);
  if (opts.cniVersion) conflist = Buffer.from(`${JSON.stringify({ ...JSON.parse(conflist.toString('utf8')), cniVersion: opts.cniVersion }, null, 2)}\n`);
  requireDir(opts.cniBinDir, 'cni-bin-dir');
  requireDir(opts.cniConfDir, 'cni-conf-dir');
  const confName = basename(opts.conflist);
  const result: InstallCniResult = {
    binary: installFileAtomically(opts.cniBinDir, basename(opts.cniBinary), binary, 0o755),
    conflist: installFileAtomically(opts.cniConfDir, confName, conflist, 0o644),
    shadowedBy: [],
  };
  const configs = cniConfigFiles(opts.cniConfDir);
  result.shadowedBy = configs.slice(0, configs.indexOf(confName));
  return result;
}

export async function installCniCommand(argv: string[]): Promise<number> {
  const opts = parseInstallCniArgs(argv);
  if (!opts) {
    process.stdout.write(INSTALL_CNI_USAGE);
    return 0;
  }
  let r: InstallCniResult;
  try {
    r = installCni(opts);
  } catch (err) {
    if (!(err instanceof InstallCniError)) throw err;
    process.stderr.write(`sluice install-cni: ${err.message}\n`);
    return 1;
  }
  for (const [f, from] of [[r.binary, opts.cniBinary], [r.conflist, opts.conflist]] as const) {
    process.stdout.write(f.changed ? `installed ${f.path} (from ${from})\n` : `unchanged ${f.path}\n`);
  }
  if (r.shadowedBy.length) {
    process.stderr.write(
      `sluice install-cni: warning: ${r.shadowedBy.join(', ')} in ${opts.cniConfDir} sort(s) before ${basename(r.conflist.path)}: ` +
        'the runtime uses the first config, so pods will not get Sluice networking until that file is removed\n',
    );
  }
  return 0;
}
