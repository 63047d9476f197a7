// The node's own addresses, for the ipcache (identity "host": what kubelet's
// probes and the node's other traffic come from). Reading them from netlink
// costs milliseconds on a node with hundreds of veths, so a sync does not do
// it: they are read once at start and then every `intervalMs`, and a change
// marks the policy dirty. An address added to the node is judged as "host"
// within one interval; until then it is an unknown address, which policy
// treats as "world" (never more than that allows).
export class NodeAddresses {
  readonly #read: () => string[];
  readonly #onChange: () => void;
  readonly #intervalMs: number;
  #ips: string[] = [];
  #set = new Set<string>();
  #key = '';
  #timer: NodeJS.Timeout | undefined;

  constructor(read: () => string[], onChange: () => void, intervalMs = 2000) {
    this.#read = read;
    this.#onChange = onChange;
    this.#intervalMs = intervalMs;
    this.refresh();
  }

  /** The addresses last read. */
  get(): string[] {
    return this.#ips;
  }

  /** Whether `ip` is one of them (per DNS query: a set, not a scan of every veth's link-local). */
  has(ip: string): boolean {
    return this.#set.has(ip);
  }

  /** Reads them now; returns whether they changed. A failed read keeps the last ones. */
  refresh(): boolean {
    let ips: string[];
    try {
      ips = [...new Set(this.#read())].sort();
    } catch {
      return false;
    }
    const key = ips.join(',');
    if (key === this.#key) return false;
    this.#ips = ips;
    this.#set = new Set(ips);
    this.#key = key;
    return true;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      if (this.refresh()) this.#onChange();
    }, this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
