// DNS names are compared label by label (PRODUCT §5, issue 12 item 3), end to
// end: a real nsd serves `dot\.example.test.` (two labels: "dot.example" and
// "test") next to the ordinary `dot.example.test.` (three labels), each with
// an address of its own. An FQDNPolicy naming `dot.example.test` must open
// only the second; a `dns: MatchedOnly` pod must be refused the first; and
// `sluice fqdn` must show the first with its escape, as learned (also after a
// restart, from the journal).
//
// dig is the pod-side client: it reads names in presentation format, so it
// can ask for a label that holds a dot, a space, a backslash or a non-ASCII
// byte (dnsprobe.py cannot).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../../src/cli/client.js';
import { Cleanup, SLUICE, TestNode, type Netns } from '../helpers/agent.js';
import { dig, startAuthServer, type Zone } from '../helpers/dns.js';
import { isRoot } from '../helpers/netns.js';
import { makeWorld } from '../helpers/world.js';

const NSD = '198.18.0.53';
const POD_CIDR = '10.73.0.0/24';
const ESCAPED_IP = '198.18.7.1';
const NORMAL_IP = '198.18.7.2';
const ODD_IP = '198.18.7.3';
const PATTERN_IP = '198.18.7.4';

/** Presentation format, as dig reads it and as `sluice fqdn` must print it. */
const ESCAPED = 'dot\\.example.test';
const NORMAL = 'dot.example.test';
/** A label with a space, a backslash and a byte that is not UTF-8; upper case on the wire. */
const ODD_WIRE = 'Sp\\032ace\\\\\\200.example.test';
const ODD_SHOWN = 'sp\\032ace\\\\\\200.example.test';
/** Labels "x.y", "pat", "test": one label under pat.test to a naive matcher of "*.pat.test" (as "x.y"?), two to a string one. */
const PATTERN_ESCAPED = 'x\\.y.pat.test';

// nsd reads owner names in presentation format: `dot\.example` is one label.
const ZONE: Zone = {
  origin: 'test',
  defaultTtl: 300,
  records: [
    { name: 'dot\\.example', type: 'A', value: ESCAPED_IP },
    { name: 'dot.example', type: 'A', value: NORMAL_IP },
    { name: 'Sp\\032ace\\\\\\200.example', type: 'A', value: ODD_IP },
    { name: 'x\\.y.pat', type: 'A', value: PATTERN_IP },
  ],
};

const POLICY = `apiVersion: v1
kind: Namespace
metadata: { name: lbl }
---
apiVersion: v1
kind: Pod
metadata: { name: open, namespace: lbl, labels: { app: open } }
---
apiVersion: v1
kind: Pod
metadata: { name: strict, namespace: lbl, labels: { app: strict } }
---
apiVersion: sluice.dev/v1alpha1
kind: FQDNPolicy
metadata: { name: dot, namespace: lbl }
spec:
  podSelector: { matchLabels: { app: open } }
  egress:
  - toFQDNs: [ { matchName: dot.example.test }, { matchPattern: "**.y.pat.test" } ]
---
apiVersion: sluice.dev/v1alpha1
kind: FQDNPolicy
metadata: { name: strict, namespace: lbl }
spec:
  podSelector: { matchLabels: { app: strict } }
  dns: MatchedOnly
  egress:
  - toFQDNs: [ { matchName: dot.example.test } ]
`;

/** TCP 80 on every address of the world. */
const WEB = `import socket,threading
s=socket.socket(socket.AF_INET);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.setsockopt(socket.SOL_IP,19,1)
s.bind(('0.0.0.0',80));s.listen(64)
while True:
  c,_=s.accept();c.close()`;

interface Row {
  name: string;
  ips: Array<{ ip: string; expiresInMs: number }>;
  rules: Array<{ policy: string; rule: number }>;
}

const cleanup = new Cleanup();
const procs: ChildProcess[] = [];
let node: TestNode;
let world: Netns;
let open: Netns;
let strict: Netns;

const pod = (name: string): Netns => node.addPod(cleanup, 'lbl', name);

/** A TCP connect from `ns` within 0.5 s. */
function reach(ns: Netns, ip: string): boolean {
  const code = `import socket;s=socket.socket();s.settimeout(0.5);s.connect(('${ip}',80))`;
  return spawnSync('nsenter', [`--net=${ns.path}`, 'python3', '-c', code]).status === 0;
}

function sluice(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SLUICE, ...args, '--run-dir', node.runDir], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function fqdnJson(): Row[] {
  const r = sluice(['fqdn', '-o', 'json']);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Row[];
}

/** name → its addresses and rules, as `sluice fqdn -o json` shows them. */
function byName(rows: readonly Row[]): Map<string, { ips: string[]; rules: string[] }> {
  return new Map(rows.map((r) => [r.name, { ips: r.ips.map((i) => i.ip).sort(), rules: r.rules.map((x) => `${x.policy}#${x.rule}`).sort() }]));
}

describe.skipIf(!isRoot)('DNS names are compared label by label', () => {
  beforeAll(async () => {
    node = new TestNode(cleanup, { podCidr: POD_CIDR, nodeIp: '10.73.255.1/32', extraArgs: ['--dns-trusted', NSD] });
    cleanup.add(() => {
      for (const p of procs) p.kill('SIGKILL');
    });
    world = makeWorld(cleanup, node, { tag: 'l', node: ['198.19.0.1/24'], world: ['198.19.0.2/24'], owns: ['198.18.0.0/16'], addresses: [NSD], podCidrs: [POD_CIDR] });

    await startAuthServer(cleanup, world, { address: NSD, zones: [ZONE] });
    procs.push(spawn('nsenter', [`--net=${world.path}`, 'python3', '-c', WEB], { stdio: 'ignore' }));

    node.writeManifest('lbl.yaml', POLICY);
    await node.start();
    open = pod('open');
    strict = pod('strict');
    // The world answers (so a "blocked" below is the policy, not a dead host).
    const deadline = Date.now() + 5000;
    while (!reach(node.ns, NORMAL_IP)) {
      if (Date.now() > deadline) throw new Error('the web server in the world netns did not come up');
    }
  }, 120_000);

  afterAll(() => cleanup.run());

  it('serves both names from nsd, each with its own address (the fixture is what the test assumes)', () => {
    expect(dig(world, NSD, ESCAPED).answers.map((a) => a.value)).toEqual([ESCAPED_IP]);
    expect(dig(world, NSD, NORMAL).answers.map((a) => a.value)).toEqual([NORMAL_IP]);
  });

  it('does not open the address of `dot\\.example.test` for a rule naming dot.example.test; the real name opens its own', () => {
    expect(reach(open, ESCAPED_IP)).toBe(false);
    expect(reach(open, NORMAL_IP)).toBe(false);

    const escaped = dig(open, NSD, ESCAPED);
    expect(escaped.status).toBe('NOERROR'); // dns: AllowAll resolves it: it just opens nothing
    expect(escaped.answers.map((a) => a.value)).toEqual([ESCAPED_IP]);
    expect(reach(open, ESCAPED_IP)).toBe(false);

    const normal = dig(open, NSD, NORMAL);
    expect(normal.answers.map((a) => a.value)).toEqual([NORMAL_IP]);
    expect(reach(open, NORMAL_IP)).toBe(true);
    expect(reach(open, ESCAPED_IP)).toBe(false);
  });

  it('does not let `**.` count a label holding a dot as two labels', () => {
    // "**.y.pat.test" would need a label "y"; x\.y.pat.test has the label "x.y".
    const r = dig(open, NSD, PATTERN_ESCAPED);
    expect(r.answers.map((a) => a.value)).toEqual([PATTERN_IP]);
    expect(reach(open, PATTERN_IP)).toBe(false);
  });

  it('refuses `dot\\.example.test` to a dns: MatchedOnly pod whose rule names dot.example.test', () => {
    expect(dig(strict, NSD, ESCAPED).status).toBe('REFUSED');
    expect(dig(strict, NSD, NORMAL).status).toBe('NOERROR');
  });

  it('shows learned names escaped in `sluice fqdn` (JSON and table)', () => {
    expect(dig(open, NSD, ODD_WIRE).answers.map((a) => a.value)).toEqual([ODD_IP]);
    const rows = byName(fqdnJson());
    expect(rows.get(ESCAPED)).toEqual({ ips: [ESCAPED_IP], rules: [] });
    expect(rows.get(NORMAL)).toEqual({ ips: [NORMAL_IP], rules: ['lbl/dot#0', 'lbl/strict#0'] });
    expect(rows.get(PATTERN_ESCAPED)).toEqual({ ips: [PATTERN_IP], rules: [] });
    expect(rows.get(ODD_SHOWN)).toEqual({ ips: [ODD_IP], rules: [] });

    const table = sluice(['fqdn']);
    expect(table.status, table.stderr).toBe(0);
    const lines = table.stdout.split('\n');
    const row = (name: string) => lines.find((l) => l.split(/\s+/)[0] === name)?.split(/\s+/);
    expect(row(ESCAPED)).toEqual([ESCAPED, ESCAPED_IP, expect.any(String), '-']);
    expect(row(NORMAL)?.slice(0, 2)).toEqual([NORMAL, NORMAL_IP]);
    expect(row(NORMAL)?.[3]?.split(',').sort()).toEqual(['lbl/dot#0', 'lbl/strict#0']);
    expect(row(ODD_SHOWN)?.[1]).toBe(ODD_IP);
  });

  it('keeps the label structure across a restart (journal): the escaped name is restored as itself and still opens nothing', async () => {
    await node.stop('SIGKILL');
    await node.start();
    const rows = byName(fqdnJson());
    expect(rows.get(ESCAPED)).toEqual({ ips: [ESCAPED_IP], rules: [] });
    expect(rows.get(NORMAL)).toEqual({ ips: [NORMAL_IP], rules: ['lbl/dot#0', 'lbl/strict#0'] });
    expect(rows.get(ODD_SHOWN)).toEqual({ ips: [ODD_IP], rules: [] });
    expect(reach(open, NORMAL_IP)).toBe(true);
    expect(reach(open, ESCAPED_IP)).toBe(false);
    expect(reach(open, PATTERN_IP)).toBe(false);
  }, 60_000);
});
