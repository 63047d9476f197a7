// The CNI commands, run by the agent for requests the sluice-cni binary
// forwards. Small functions over injected ports (./ports.ts).
//
// Pod wiring (as Cilium does): the pod gets its address as a /32 (/128) and a
// default route via a link-local gateway that is a permanent neighbour entry
// pointing at the host-side veth's MAC, so no ARP/NDP for the gateway is ever
// needed; the node routes each pod address to its host-side veth.
import { CniCode, CniError } from './errors.js';
import { parseCniArgs, parseNetConf, requireContainerId, type NetConf, type ValidAttachment } from './config.js';
import type { CniDeps, EndpointRecord } from './ports.js';
import { parseIpamResult, renderResult, type Result } from './result.js';
import type { CniRequest, Handler, CniCommand } from './skel.js';
import { UndoStack } from './undo.js';
import { hostVethName, HOST_VETH_PREFIX } from './veth-name.js';
import { versionInfo } from './version.js';
import { compareVersions } from './versions.js';

export const GATEWAY_V4 = '169.254.1.1';
export const GATEWAY_V6 = 'fe80::1';

/** Sluice's own error codes (100+ are plugin-specific in the spec). */
export const SluiceCniCode = {
  IP_EXHAUSTED: 100,
  INTERFACE_EXISTS: 101,
  CHECK_FAILED: 102,
} as const;

function errCode(err: unknown): string | undefined {
  return (err as { code?: unknown })?.code as string | undefined;
}

function family(cidr: string): 4 | 6 {
  return cidr.includes(':') ? 6 : 4;
}

function hostCidr(cidr: string): string {
  const ip = cidr.split('/')[0]!;
  return `${ip}/${family(cidr) === 4 ? 32 : 128}`;
}

function requireNetns(deps: CniDeps, path: string): string {
  if (!deps.netnsExists(path)) throw new CniError(CniCode.INVALID_ENV, `CNI_NETNS ${JSON.stringify(path)} is not a network namespace`);
  return path;
}

function toCniError(err: unknown, what: string): CniError {
  if (err instanceof CniError) return err;
  const code = errCode(err);
  if (code === 'SLUICE_IPAM_EXHAUSTED') return new CniError(SluiceCniCode.IP_EXHAUSTED, 'no free IP address', (err as Error).message);
  // A full map (however it surfaced) is transient for the runtime: pods go
  // away and the ADD can be retried. The endpoint was never left enforcing
  // anything (register rolled it back).
  if (code === 'SLUICE_MAP_FULL' || code === 'E2BIG' || code === 'ENOSPC') return new CniError(CniCode.TRY_AGAIN_LATER, 'datapath map full', (err as Error).message);
  return new CniError(CniCode.INTERNAL, `${what}: ${(err as Error)?.message ?? String(err)}`, (err as { details?: string })?.details ?? '');
}

function envOf(req: CniRequest): Record<string, string> {
  const e = req.env;
  return {
    CNI_COMMAND: e.command,
    CNI_CONTAINERID: e.containerId,
    CNI_NETNS: e.netns,
    CNI_IFNAME: e.ifname,
    CNI_ARGS: e.args,
    CNI_PATH: e.path,
  };
}

async function add(deps: CniDeps, req: CniRequest): Promise<unknown> {
  const conf = parseNetConf(req.config);
  const containerId = requireContainerId(req.env.containerId);
  const ifname = req.env.ifname;
  const pod = parseCniArgs(req.env.args);
  const netns = requireNetns(deps, req.env.netns);

  // A retried ADD (the runtime timed out on us, or the binary was killed)
  // gets the same answer while the interface is still there.
  const existing = deps.endpoints.get(containerId, ifname);
  if (existing && existing.netns === netns && deps.netlink.linkGet(netns, ifname) && deps.endpoints.programmed(existing)) {
    return renderResult(conf.cniVersion, existing.result);
  }
  if (existing) await del(deps, req);

  const undo = new UndoStack();
  const owner = { containerId, ifname };
  try {
    let cidrs: string[];
    let dns: Result['dns'];
    if (conf.ipam) {
      const raw = await deps.delegate.run('ADD', conf, envOf(req));
      // The plugin has allocated once it answers, even with a result we
      // cannot read: release it then too.
      undo.push('delegated IPAM release', () => deps.delegate.run('DEL', conf, { ...envOf(req), CNI_COMMAND: 'DEL' }));
      const ipamResult = parseIpamResult(raw);
      cidrs = ipamResult.ips.map((ip) => ip.address);
      dns = ipamResult.dns;
      if (cidrs.length === 0) throw new CniError(CniCode.INTERNAL, `IPAM plugin ${conf.ipam.type} returned no addresses`);
    } else {
      cidrs = deps.ipam.allocate(owner);
      undo.push('IPAM release', () => deps.ipam.release(owner));
    }

    const hostIfname = hostVethName(containerId, ifname);
    if (deps.netlink.linkGet(null, hostIfname)) {
      throw new CniError(SluiceCniCode.INTERFACE_EXISTS, `host interface ${hostIfname} already exists`, 'another attachment with the same container ID and interface name');
    }
    if (deps.netlink.linkGet(netns, ifname)) {
      throw new CniError(SluiceCniCode.INTERFACE_EXISTS, `interface ${ifname} already exists in ${netns}`);
    }
    try {
      deps.netlink.linkAddVeth(null, hostIfname, ifname, { peerNetns: netns, mtu: conf.mtu });
    } catch (err) {
      if (errCode(err) === 'EEXIST') throw new CniError(SluiceCniCode.INTERFACE_EXISTS, `interface ${ifname} or ${hostIfname} already exists`, (err as Error).message);
      throw err;
    }
    // Deleting the host end removes both ends.
    undo.push('delete veth', () => deps.netlink.linkDel(null, hostIfname));

    const host = deps.netlink.linkGet(null, hostIfname);
    const podLink = deps.netlink.linkGet(netns, ifname);
    if (!host || !podLink) throw new CniError(CniCode.INTERNAL, 'veth pair vanished right after creation');

    // Pod side: up, addresses, gateway neighbour, default routes.
    deps.netlink.linkSet(netns, ifname, { up: true });
    const podCidrs = cidrs.map(hostCidr);
    for (const c of podCidrs) deps.netlink.addrAdd(netns, ifname, c, { noDad: family(c) === 6 });
    const families = [...new Set(podCidrs.map(family))];
    for (const f of families) {
      const gw = f === 4 ? GATEWAY_V4 : GATEWAY_V6;
      deps.netlink.neighAdd(netns, { dev: ifname, ip: gw, mac: host.mac, permanent: true });
      deps.netlink.routeAdd(netns, { dst: f === 4 ? '0.0.0.0/0' : '::/0', gateway: gw, dev: ifname, onlink: f === 4 });
    }
    // Node side: up, a route and a permanent neighbour entry per pod address
    // (both MACs are known here, so neither side ever waits on ARP/NDP or on
    // IPv6 duplicate address detection of a fresh link).
    deps.netlink.linkSet(null, hostIfname, { up: true });
    for (const c of podCidrs) {
      deps.netlink.routeAdd(null, { dst: c, dev: hostIfname, scope: 'link' });
      deps.netlink.neighAdd(null, { dev: hostIfname, ip: c.split('/')[0]!, mac: podLink.mac, permanent: true });
    }

    const result: Result = {
      interfaces: [
        { name: hostIfname, mac: host.mac, mtu: conf.mtu },
        { name: ifname, mac: podLink.mac, mtu: conf.mtu, sandbox: netns },
      ],
      ips: podCidrs.map((c) => ({ address: c, gateway: family(c) === 4 ? GATEWAY_V4 : GATEWAY_V6, interface: 1 })),
      routes: families.map((f) => (f === 4 ? { dst: '0.0.0.0/0', gw: GATEWAY_V4 } : { dst: '::/0', gw: GATEWAY_V6 })),
      ...(dns ? { dns } : {}),
    };
    const rec: EndpointRecord = {
      containerId,
      ifname,
      netns,
      hostIfname,
      hostIfindex: host.ifindex,
      hostMac: host.mac,
      podMac: podLink.mac,
      mtu: conf.mtu,
      ips: podCidrs,
      pod,
      ...(conf.ipam ? { delegatedIpam: conf.ipam, cniPath: req.env.path } : {}),
      result,
      createdAt: deps.now().toISOString(),
    };
    // Last: the datapath entry and programs. Returns once policy is in force.
    await deps.endpoints.register(rec);
    undo.commit();
    return renderResult(conf.cniVersion, result);
  } catch (err) {
    const failed = await undo.unwind();
    const e = toCniError(err, 'ADD failed');
    if (failed.length) throw new CniError(e.code, e.message, [e.details, `cleanup also failed: ${failed.join('; ')}`].filter(Boolean).join('\n'));
    throw e;
  }
}

/** Removes everything an attachment may have left, whatever state it is in. */
async function teardown(deps: CniDeps, att: ValidAttachment, netns: string, conf: NetConf | undefined, env: Record<string, string>): Promise<void> {
  const rec = deps.endpoints.get(att.containerId, att.ifname);
  const hostIfname = rec?.hostIfname ?? hostVethName(att.containerId, att.ifname);
  // The datapath entry first, so nothing is left enforcing for a dead pod's
  // ifindex (which the kernel may hand to another link).
  await deps.endpoints.unregister(att.containerId, att.ifname);
  // Deleting either end removes the pair; the kernel's wait for it (an RCU
  // grace period) runs off the event loop so concurrent DELs overlap.
  if (netns && deps.netnsExists(netns)) await deps.netlink.linkDelAsync(netns, att.ifname);
  await deps.netlink.linkDelAsync(null, hostIfname);
  const delegated = rec?.delegatedIpam ?? conf?.ipam;
  if (delegated && conf) {
    await deps.delegate.run('DEL', { ...conf, ipam: delegated as NetConf['ipam'] }, {
      ...env,
      CNI_COMMAND: 'DEL',
      CNI_CONTAINERID: att.containerId,
      CNI_IFNAME: att.ifname,
      ...(rec?.cniPath && !env.CNI_PATH ? { CNI_PATH: rec.cniPath } : {}),
    });
  }
  deps.ipam.release(att);
}

async function del(deps: CniDeps, req: CniRequest): Promise<undefined> {
  const conf = parseNetConf(req.config);
  const containerId = requireContainerId(req.env.containerId);
  try {
    await teardown(deps, { containerId, ifname: req.env.ifname }, req.env.netns, conf, envOf(req));
  } catch (err) {
    throw toCniError(err, 'DEL failed');
  }
  return undefined;
}

function checkFailed(msg: string): CniError {
  return new CniError(SluiceCniCode.CHECK_FAILED, msg);
}

async function check(deps: CniDeps, req: CniRequest): Promise<undefined> {
  const conf = parseNetConf(req.config);
  if (compareVersions(conf.cniVersion, '0.4.0') < 0) {
    throw new CniError(CniCode.INCOMPATIBLE_VERSION, `CHECK is not defined for cniVersion ${conf.cniVersion}`, 'CHECK exists from 0.4.0 on');
  }
  const containerId = requireContainerId(req.env.containerId);
  const ifname = req.env.ifname;
  const netns = requireNetns(deps, req.env.netns);
  const rec = deps.endpoints.get(containerId, ifname);
  if (!rec) throw new CniError(CniCode.UNKNOWN_CONTAINER, `the agent has no endpoint for ${containerId}/${ifname}`);
  if (conf.prevResult) {
    const prev = parseIpamResult(conf.prevResult);
    const want = new Set(rec.ips);
    for (const ip of prev.ips) if (!want.has(ip.address)) throw checkFailed(`prevResult address ${ip.address} is not the endpoint's (${rec.ips.join(', ')})`);
  }
  const link = deps.netlink.linkGet(netns, ifname);
  if (!link) throw checkFailed(`interface ${ifname} is missing in ${netns}`);
  if (!link.up) throw checkFailed(`interface ${ifname} is down`);
  if (link.mtu !== rec.mtu) throw checkFailed(`interface ${ifname} has MTU ${link.mtu}, expected ${rec.mtu}`);
  if (link.mac !== rec.podMac) throw checkFailed(`interface ${ifname} has MAC ${link.mac}, expected ${rec.podMac}`);
  const have = new Set(deps.netlink.addrList(netns, ifname).map((a) => `${a.address}/${a.prefixLen}`));
  for (const c of rec.ips) if (!have.has(c)) throw checkFailed(`address ${c} is missing on ${ifname}`);
  for (const f of [...new Set(rec.ips.map(family))]) {
    const gw = f === 4 ? GATEWAY_V4 : GATEWAY_V6;
    const dflt = f === 4 ? '0.0.0.0/0' : '::/0';
    if (!deps.netlink.routeList(netns, f).some((r) => r.dst === dflt && r.gateway === gw && r.dev === ifname)) {
      throw checkFailed(`default route via ${gw} dev ${ifname} is missing`);
    }
  }
  const host = deps.netlink.linkGet(null, rec.hostIfname);
  if (!host || host.ifindex !== rec.hostIfindex) throw checkFailed(`host interface ${rec.hostIfname} is missing or was replaced`);
  const routes = new Set(rec.ips.flatMap((c) => deps.netlink.routeList(null, family(c)).filter((r) => r.dev === rec.hostIfname).map((r) => r.dst)));
  for (const c of rec.ips) if (!routes.has(c)) throw checkFailed(`node route ${c} dev ${rec.hostIfname} is missing`);
  if (!deps.endpoints.programmed(rec)) throw checkFailed(`the datapath is not programmed for ${rec.hostIfname}`);
  if (conf.ipam && rec.delegatedIpam) {
    try {
      await deps.delegate.run('CHECK', conf, envOf(req));
    } catch (err) {
      throw toCniError(err, 'IPAM CHECK failed');
    }
  }
  return undefined;
}

async function gc(deps: CniDeps, req: CniRequest): Promise<undefined> {
  const conf = parseNetConf(req.config);
  if (compareVersions(conf.cniVersion, '1.1.0') < 0) {
    throw new CniError(CniCode.INCOMPATIBLE_VERSION, `GC is not defined for cniVersion ${conf.cniVersion}`, 'GC exists from 1.1.0 on');
  }
  const valid = new Set((conf.validAttachments ?? []).map((a) => `${a.containerId}/${a.ifname}`));
  const isValid = (a: ValidAttachment) => valid.has(`${a.containerId}/${a.ifname}`);
  const failures: string[] = [];
  const env = envOf(req);
  const sweep = async (a: ValidAttachment, netns: string) => {
    try {
      await teardown(deps, a, netns, conf, env);
    } catch (err) {
      failures.push(`${a.containerId}/${a.ifname}: ${(err as Error).message}`);
    }
  };
  for (const rec of deps.endpoints.list()) if (!isValid(rec)) await sweep(rec, rec.netns);
  // Leaks without an endpoint record: an address, or a host veth of ours.
  for (const owner of deps.ipam.owners()) if (!isValid(owner)) await sweep(owner, '');
  // A valid attachment's veth stays even without a record (one the agent
  // could not read back is quarantined, not gone).
  const keep = new Set([...deps.endpoints.list().map((r) => r.hostIfname), ...(conf.validAttachments ?? []).map((a) => hostVethName(a.containerId, a.ifname))]);
  for (const l of deps.netlink.linkList(null)) {
    if (l.kind === 'veth' && l.name.startsWith(HOST_VETH_PREFIX) && !keep.has(l.name)) deps.netlink.linkDel(null, l.name);
  }
  if (conf.ipam) {
    try {
      await deps.delegate.run('GC', conf, env);
    } catch (err) {
      failures.push(`IPAM plugin GC: ${(err as Error).message}`);
    }
  }
  if (failures.length) throw new CniError(CniCode.INTERNAL, 'GC could not remove every stale attachment', failures.join('\n'));
  return undefined;
}

async function status(_deps: CniDeps, req: CniRequest): Promise<undefined> {
  parseNetConf(req.config);
  return undefined;
}

export function makeHandlers(deps: CniDeps): Record<CniCommand, Handler> {
  return {
    ADD: (req) => add(deps, req),
    DEL: (req) => del(deps, req),
    CHECK: (req) => check(deps, req),
    GC: (req) => gc(deps, req),
    STATUS: (req) => status(deps, req),
    VERSION: ({ config }) => versionInfo(config),
  };
}
