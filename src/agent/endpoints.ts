// The agent's endpoint registry: one record per attachment, persisted as
// <state-dir>/endpoints/<containerId>.<ifname>.json (temp file + rename), and
// the datapath entry for its host veth. A record is written only once the
// datapath is programmed, so "has a record" means "was fully added".
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EndpointRecord, EndpointsPort } from '../cni/index.js';
import type { Datapath } from '../datapath/index.js';
import type { Logger } from '../log/index.js';
import { native } from '../native/index.js';

/**
 * Called whenever the set of endpoints changes; must leave every endpoint's
 * datapath entry (identity, flags, policy) written before it returns.
 */
export type EndpointsChanged = () => void;

function key(containerId: string, ifname: string): string {
  return `${containerId}.${ifname}`;
}

export class EndpointRegistry implements EndpointsPort {
  readonly #dir: string;
  readonly #datapath: Datapath;
  readonly #log: Logger;
  readonly #records = new Map<string, EndpointRecord>();
  #changed: EndpointsChanged = () => undefined;

  constructor(stateDir: string, datapath: Datapath, log: Logger) {
    this.#dir = join(stateDir, 'endpoints');
    this.#datapath = datapath;
    this.#log = log;
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(this.#dir)) {
      const path = join(this.#dir, name);
      if (!name.endsWith('.json')) {
        rmSync(path, { force: true }); // a temp file from a crash mid-write
        continue;
      }
      try {
        const rec = JSON.parse(readFileSync(path, 'utf8')) as EndpointRecord;
        this.#records.set(key(rec.containerId, rec.ifname), rec);
      } catch (err) {
        log.error({ err, file: path }, 'unreadable endpoint record ignored');
      }
    }
  }

  onChange(changed: EndpointsChanged): void {
    this.#changed = changed;
  }

  get(containerId: string, ifname: string): EndpointRecord | undefined {
    return this.#records.get(key(containerId, ifname));
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
      this.#changed();
      this.attach(rec);
      const path = join(this.#dir, `${k}.json`);
      writeFileSync(`${path}.tmp`, `${JSON.stringify(rec, null, 2)}\n`, { mode: 0o600 });
      renameSync(`${path}.tmp`, path);
    } catch (err) {
      this.#records.delete(k);
      this.#datapath.deleteEndpoint(rec.hostIfindex);
      try {
        this.#changed();
      } catch (again) {
        this.#log.error({ err: again }, 'reprogramming after a failed ADD failed too');
      }
      throw err;
    }
    this.#log.info({ pod: rec.pod, containerId: rec.containerId, ifname: rec.ifname, hostIfname: rec.hostIfname, ips: rec.ips }, 'endpoint programmed');
  }

  /** (Re-)attaches the programs of an endpoint whose entry is written. */
  attach(rec: EndpointRecord): void {
    this.#datapath.attach(null, rec.hostIfname);
  }

  async unregister(containerId: string, ifname: string): Promise<void> {
    const rec = this.get(containerId, ifname);
    if (!rec) return;
    // Only delete the map entry if the ifindex is still this veth's: after a
    // reboot or a manual delete, the kernel may have reused it.
    const link = native().linkGetByIndex(null, rec.hostIfindex);
    if (!link || link.name === rec.hostIfname) this.#datapath.deleteEndpoint(rec.hostIfindex);
    rmSync(join(this.#dir, `${key(containerId, ifname)}.json`), { force: true });
    this.#records.delete(key(containerId, ifname));
    this.#changed();
    this.#log.info({ pod: rec.pod, containerId, ifname }, 'endpoint removed');
  }

  programmed(rec: EndpointRecord): boolean {
    return this.#datapath.getEndpoint(rec.hostIfindex) !== undefined && this.#datapath.attached(null, rec.hostIfname);
  }
}
