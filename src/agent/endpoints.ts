// The agent's endpoint registry: one record per attachment, persisted as
// <state-dir>/endpoints/<containerId>.<ifname>.json (temp file + rename), and
// the datapath entry for its host veth. A record is written only once the
// datapath is programmed, so "has a record" means "was fully added".
//
// A record that cannot be read back (corrupt JSON, a missing field, a name
// that does not match its content) is never silently dropped: dropping it
// would make its live veth look unaccounted-for and its address look free,
// and the next reconcile would delete the one and release the other. It is
// quarantined instead (renamed to *.json.corrupt, kept across restarts), the
// agent keeps its veth, its address and its datapath entry as the previous
// agent left them (so the pod keeps the policy it had), logs an error and
// reports it in `sluice status`, until a DEL for that attachment resolves it.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostVethName, type EndpointRecord, type EndpointsPort } from '../cni/index.js';
import { DatapathError, type Datapath } from '../datapath/index.js';
import type { Logger } from '../log/index.js';
import { native } from '../native/index.js';

/** What a policy sync reports back (src/agent/policy-engine.ts SyncReport). */
export interface ChangeReport {
  failed: ReadonlyArray<{ key: string; error: string; code: 'SLUICE_MAP_FULL' | 'SLUICE_DATAPATH' }>;
}

/**
 * Called whenever the set of endpoints changes; must leave every endpoint's
 * datapath entry (identity, flags, policy) written before it returns (or
 * before its promise resolves: the agent's reconciler answers once the sync
 * that includes the change has run), and report the endpoints it could not
 * program (they fail closed).
 */
export type EndpointsChanged = () => ChangeReport | void | Promise<ChangeReport | void>;

const CORRUPT = '.corrupt';

/** An endpoint record file that could not be read back. */
export interface QuarantinedRecord {
  /** The record's file as it is now (<stem>.json.corrupt). */
  file: string;
  /** containerId.ifname, as the file name carries it. */
  stem: string;
  error: string;
  /** The host veth names it may own: one per way to split the stem at a dot. */
  hostIfnames: string[];
}

function isRecord(v: unknown, stem: string): v is EndpointRecord {
  const r = v as Partial<EndpointRecord> | null;
  return (
    !!r &&
    typeof r === 'object' &&
    typeof r.containerId === 'string' &&
    typeof r.ifname === 'string' &&
    `${r.containerId}.${r.ifname}` === stem &&
    typeof r.hostIfname === 'string' &&
    Number.isInteger(r.hostIfindex) &&
    Array.isArray(r.ips) &&
    r.ips.every((ip) => typeof ip === 'string') &&
    !!r.pod &&
    typeof r.pod === 'object'
  );
}

function candidateVeths(stem: string): string[] {
  const out: string[] = [];
  for (let i = stem.indexOf('.'); i > 0; i = stem.indexOf('.', i + 1)) out.push(hostVethName(stem.slice(0, i), stem.slice(i + 1)));
  return out;
}

function key(containerId: string, ifname: string): string {
  return `${containerId}.${ifname}`;
}

export class EndpointRegistry implements EndpointsPort {
  readonly #dir: string;
  readonly #datapath: Datapath;
  readonly #log: Logger;
  readonly #records = new Map<string, EndpointRecord>();
  readonly #quarantined = new Map<string, QuarantinedRecord>();
  #changed: EndpointsChanged = () => undefined;

  constructor(stateDir: string, datapath: Datapath, log: Logger) {
    this.#dir = join(stateDir, 'endpoints');
    this.#datapath = datapath;
    this.#log = log;
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(this.#dir)) {
      const path = join(this.#dir, name);
      if (name.endsWith('.tmp')) {
        rmSync(path, { force: true }); // a temp file from a crash mid-write
        continue;
      }
      if (name.endsWith(`.json${CORRUPT}`)) {
        // Quarantined by an earlier agent: still unresolved.
        const stem = name.slice(0, -`.json${CORRUPT}`.length);
        if (!this.#quarantined.has(stem)) this.#quarantine(stem, path, 'quarantined by an earlier agent');
        continue;
      }
      if (!name.endsWith('.json')) continue;
      const stem = name.slice(0, -'.json'.length);
      let error: string;
      try {
        const rec: unknown = JSON.parse(readFileSync(path, 'utf8'));
        if (isRecord(rec, stem)) {
          this.#records.set(stem, rec);
          continue;
        }
        error = 'not an endpoint record for this attachment (missing or mismatched fields)';
      } catch (err) {
        error = (err as Error).message;
      }
      const quarantine = `${path}${CORRUPT}`;
      try {
        renameSync(path, quarantine);
      } catch (err) {
        log.error({ err, file: path }, 'could not rename an unreadable endpoint record; keeping it in place');
      }
      this.#quarantine(stem, existsSync(quarantine) ? quarantine : path, error);
    }
  }

  #quarantine(stem: string, file: string, error: string): void {
    const q: QuarantinedRecord = { file, stem, error, hostIfnames: candidateVeths(stem) };
    this.#quarantined.set(stem, q);
    this.#log.error(
      { file, attachment: stem, error, hostIfnames: q.hostIfnames },
      'unreadable endpoint record quarantined: its veth, address and datapath entry are kept as they are until a DEL for it',
    );
  }

  /** Records that could not be read back; their attachments are left alone. */
  quarantined(): QuarantinedRecord[] {
    return [...this.#quarantined.values()];
  }

  onChange(changed: EndpointsChanged): void {
    this.#changed = changed;
  }

  get(containerId: string, ifname: string): EndpointRecord | undefined {
    return this.#records.get(key(containerId, ifname));
  }

  /** The record registered under `${containerId}.${ifname}`. */
  byKey(k: string): EndpointRecord | undefined {
    return this.#records.get(k);
  }

  list(): EndpointRecord[] {
    return [...this.#records.values()];
  }

  async register(rec: EndpointRecord): Promise<void> {
    const k = key(rec.containerId, rec.ifname);
    // Policy (map entry included) before the programs: attached programs
    // drop everything on a veth without an entry, so there is never a window
    // of unenforced traffic.
    this.#records.set(k, rec);
    try {
      const failed = (await this.#changed())?.failed.find((f) => f.key === k);
      // The endpoint would drop everything: the ADD fails (a full map is
      // "try again later" for the runtime) and leaves nothing behind.
      if (failed) throw new DatapathError(failed.code, `policy for ${k} could not be programmed: ${failed.error}`);
      this.attach(rec);
      const path = join(this.#dir, `${k}.json`);
      writeFileSync(`${path}.tmp`, `${JSON.stringify(rec, null, 2)}\n`, { mode: 0o600 });
      renameSync(`${path}.tmp`, path);
    } catch (err) {
      this.#records.delete(k);
      this.#forgetLocal(rec);
      this.#datapath.deleteEndpoint(rec.hostIfindex);
      try {
        await this.#changed();
      } catch (again) {
        this.#log.error({ err: again }, 'reprogramming after a failed ADD failed too');
      }
      throw err;
    }
    this.#log.info({ pod: rec.pod, containerId: rec.containerId, ifname: rec.ifname, hostIfname: rec.hostIfname, ips: rec.ips }, 'endpoint programmed');
  }

  /**
   * (Re-)attaches the programs of an endpoint whose entry is written, after
   * its addresses in the local delivery index (sluice_local_v1): other pods'
   * sluice_from_pod may then deliver to it directly, once its own ingress is
   * judged there (an entry is followed only while this ifindex's endpoint
   * entry owns the address).
   */
  attach(rec: EndpointRecord): void {
    this.#writeLocal(rec);
    this.#datapath.attach(null, rec.hostIfname);
  }

  #writeLocal(rec: EndpointRecord): void {
    if (!rec.podMac || !rec.hostMac) return; // no MACs known: the normal path
    const local = this.#datapath.localEndpoints;
    for (const cidr of rec.ips) {
      try {
        local.set(cidr.split('/')[0]!, { ifindex: rec.hostIfindex, podMac: rec.podMac, hostMac: rec.hostMac });
      } catch (err) {
        // Only the shortcut is lost: packets to it take the normal path.
        this.#log.warn({ err, pod: rec.pod, ip: cidr }, 'could not index a pod address for local delivery');
      }
    }
  }

  /** Removes the endpoint's addresses from the local delivery index (those still pointing at its veth). */
  #forgetLocal(rec: EndpointRecord): void {
    const local = this.#datapath.localEndpoints;
    for (const cidr of rec.ips) {
      const ip = cidr.split('/')[0]!;
      try {
        if (local.get(ip)?.ifindex === rec.hostIfindex) local.delete(ip);
      } catch (err) {
        this.#log.warn({ err, pod: rec.pod, ip }, 'could not remove a pod address from the local delivery index');
      }
    }
  }

  async unregister(containerId: string, ifname: string): Promise<void> {
    const rec = this.get(containerId, ifname);
    if (!rec) {
      this.#resolveQuarantined(containerId, ifname);
      return;
    }
    // Only delete the map entry if the ifindex is still this veth's: after a
    // reboot or a manual delete, the kernel may have reused it.
    const link = native().linkGetByIndex(null, rec.hostIfindex);
    this.#forgetLocal(rec);
    if (!link || link.name === rec.hostIfname) this.#datapath.deleteEndpoint(rec.hostIfindex);
    rmSync(join(this.#dir, `${key(containerId, ifname)}.json`), { force: true });
    this.#records.delete(key(containerId, ifname));
    await this.#changed();
    this.#log.info({ pod: rec.pod, containerId, ifname }, 'endpoint removed');
  }

  /** A DEL for a quarantined attachment: its entry goes (the caller removes the veth), and so does the file. */
  #resolveQuarantined(containerId: string, ifname: string): void {
    const stem = key(containerId, ifname);
    const q = this.#quarantined.get(stem);
    if (!q) return;
    const link = native().linkGet(null, hostVethName(containerId, ifname));
    if (link) this.#datapath.deleteEndpoint(link.ifindex);
    rmSync(q.file, { force: true });
    this.#quarantined.delete(stem);
    this.#log.info({ attachment: stem, file: q.file }, 'quarantined endpoint record resolved by DEL');
  }

  programmed(rec: EndpointRecord): boolean {
    return this.#datapath.getEndpoint(rec.hostIfindex) !== undefined && this.#datapath.attached(null, rec.hostIfname);
  }
}
