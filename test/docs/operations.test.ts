// docs/operations.md's example outputs come from here: one real standalone
// node (the agent, pods through the real sluice-cni, a DNS server and a web
// host behind the node), real traffic, then every operator command as an
// operator would run it. Each output is captured under a name; the doc holds
// them between `<!-- capture:NAME -->` and `<!-- /capture -->` markers.
//
// `make docs-capture` (SLUICE_CAPTURE_DOCS=1) writes the captures into the
// doc. Otherwise (make test) the doc is checked against this run: every
// marker has a capture and each captured block still has the shape of what
// the commands print now (table headers, `key:` lines, JSON keys, metric
// names), so the doc cannot drift from the code unnoticed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup, podIps, ROOT, SLUICE, TestNode, type Netns } from '../helpers/agent.js';
import { probeQuery, startAuthServer, type Zone } from '../helpers/dns.js';
import { isRoot } from '../helpers/netns.js';
import { makeWorld } from '../helpers/world.js';
import { until } from '../helpers/wait.js';

const DOC = join(ROOT, 'docs/operations.md');
const CAPTURE = process.env.SLUICE_CAPTURE_DOCS === '1';
const POD_CIDR = '10.76.0.0/24';
const DNS = '198.18.7.53';
const API = '198.18.7.10';
const OTHER = '198.18.7.11';

const ZONE: Zone = {
  origin: 'example.test',
  defaultTtl: 300,
  records: [
    { name: 'api', type: 'A', value: API },
    { name: 'other', type: 'A', value: OTHER },
  ],
};

const MANIFEST = `apiVersion: v1
kind: Namespace
metadata: { name: shop }
---
apiVersion: v1
kind: Pod
metadata: { name: frontend, namespace: shop, labels: { app: frontend } }
---
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: shop, labels: { app: web } }
spec: { containers: [ { name: web, ports: [ { name: http, containerPort: 8080 } ] } ] }
---
apiVersion: v1
kind: Pod
metadata: { name: db, namespace: shop, labels: { app: db } }
spec: { containers: [ { name: db, ports: [ { name: pg, containerPort: 5432 } ] } ] }
---
# web: only the frontend, on its http port.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web-ingress, namespace: shop }
spec:
  podSelector: { matchLabels: { app: web } }
  ingress: [ { from: [ { podSelector: { matchLabels: { app: frontend } } } ], ports: [ { port: http } ] } ]
---
# db: only web — in audit mode while it is rolled out.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: db-ingress, namespace: shop, annotations: { sluice.dev/enforcement: audit } }
spec:
  podSelector: { matchLabels: { app: db } }
  ingress: [ { from: [ { podSelector: { matchLabels: { app: web } } } ], ports: [ { port: pg } ] } ]
---
# frontend: the shop's pods, and api.example.test on 443.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: frontend-egress, namespace: shop }
spec:
  podSelector: { matchLabels: { app: frontend } }
  policyTypes: [ Egress ]
  egress: [ { to: [ { podSelector: {} } ] } ]
---
apiVersion: sluice.dev/v1alpha1
kind: FQDNPolicy
metadata: { name: frontend-api, namespace: shop }
spec:
  podSelector: { matchLabels: { app: frontend } }
  egress: [ { toFQDNs: [ { matchName: api.example.test } ], ports: [ { port: 443, protocol: TCP } ] } ]
`;

const ASSERTIONS = `apiVersion: sluice.dev/v1alpha1
kind: Assertions
assertions:
- { from: shop/frontend, to: shop/web, port: http, expect: allow }
- { from: shop/frontend, to: shop/web, port: 9090/TCP, expect: deny }
- { from: shop/frontend, to: api.example.test, port: 443/TCP, expect: allow }
- { from: shop/frontend, to: ${OTHER}, port: 443/TCP, expect: deny }
- { from: shop/web, to: shop/frontend, port: 80/TCP, expect: deny }   # wrong: web's egress is open
`;

/** Every TCP port given: accept, send the pod's name, close. */
const SERVER = `import socket,sys,threading
def serve(p):
  s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',p));s.listen(64)
  while True:
    c,_=s.accept();c.sendall(sys.argv[1].encode());c.close()
for p in sys.argv[2:]: threading.Thread(target=serve,args=(int(p),),daemon=True).start()
threading.Event().wait()`;

const cleanup = new Cleanup();
const procs: ChildProcess[] = [];
let node: TestNode;
let offline: string;
const pods: Record<string, Netns> = {};
const ips: Record<string, string> = {};
const captures = new Map<string, string>();

function connect(from: string, ip: string, port: number): boolean {
  const code = `import socket;s=socket.socket();s.settimeout(1);s.connect(('${ip}',${port}));s.recv(10)`;
  return spawnSync('nsenter', [`--net=${pods[from]!.path}`, 'python3', '-c', code], { timeout: 5000 }).status === 0;
}

/** Runs `sluice ARGS` as an operator would, keeps `$ sluice ARGS` and its output under `name`. */
function sluice(name: string, args: string[], opts: { runDir?: boolean; cwd?: string } = {}): { status: number | null; stdout: string } {
  const full = [...args, ...(opts.runDir === false ? [] : ['--run-dir', node.runDir])];
  const r = spawnSync(process.execPath, [SLUICE, ...full], { encoding: 'utf8', cwd: opts.cwd ?? offline, timeout: 30_000 });
  captures.set(name, `$ sluice ${args.join(' ')}\n${r.stdout}${r.stderr}`.trimEnd());
  return { status: r.status, stdout: r.stdout };
}

function fetchInNode(path: string): { status: string; body: string } {
  const r = spawnSync('nsenter', [`--net=${node.ns.path}`, 'curl', '-s', '-w', '\n%{http_code}', `http://127.0.0.1:9963${path}`], { encoding: 'utf8', timeout: 10_000 });
  const lines = r.stdout.trimEnd().split('\n');
  return { status: lines.pop() ?? '', body: lines.join('\n') };
}


/** What must stay the same between the doc's block and this run's output. */
export function shape(text: string): string[] {
  const out: string[] = [];
  const lines = text.split('\n');
  out.push(lines[0]!); // the command line
  for (const line of lines.slice(1)) {
    const t = line.trim();
    if (/^[A-Z][A-Z0-9 -]{2,}$/.test(t.replace(/\s+/g, ' ')) && t === t.toUpperCase()) out.push(t.replace(/\s+/g, ' ')); // table header
    else if (/^[a-z][a-z -]*:( |$)/.test(t)) out.push(t.slice(0, t.indexOf(':') + 1)); // "key:" line
    else if (/^# TYPE /.test(t)) out.push(t); // metric type line
    else if (t.startsWith('{')) {
      try {
        out.push(`json ${Object.keys(JSON.parse(t) as object).sort().join(',')}`);
      } catch {
        /* a JSON document over several lines: its top-level keys below */
      }
    } else if (/^ {2}"[a-zA-Z]+": /.test(line)) out.push(`key ${line.trim().split('"')[1]}`);
  }
  return [...new Set(out)];
}

describe.skipIf(!isRoot)('docs/operations.md: every example output is what the commands print', () => {
  beforeAll(async () => {
    offline = mkdtempSync(join(tmpdir(), 'slt-ops-'));
    cleanup.add(() => rmSync(offline, { recursive: true, force: true }));
    node = new TestNode(cleanup, { podCidr: POD_CIDR, nodeIp: '10.76.255.1/32', extraArgs: ['--dns-trusted', DNS] });
    cleanup.add(() => {
      for (const p of procs) p.kill('SIGKILL');
    });
    const world = makeWorld(cleanup, node, { tag: 'op', node: ['198.19.7.1/24'], world: ['198.19.7.2/24'], owns: ['198.18.7.0/24'], addresses: [DNS], podCidrs: [POD_CIDR] });
    await startAuthServer(cleanup, world, { address: DNS, zones: [ZONE] });
    procs.push(spawn('nsenter', [`--net=${world.path}`, 'python3', '-c', SERVER, 'world', '443'], { stdio: 'ignore' }));
    node.writeManifest('shop.yaml', MANIFEST);
    writeFileSync(join(offline, 'assertions.yaml'), ASSERTIONS);
    await node.start();
    for (const name of ['frontend', 'web', 'db']) {
      pods[name] = node.addPod(cleanup, 'shop', name);
      ips[name] = podIps(pods[name]).v4;
    }
    procs.push(spawn('nsenter', [`--net=${pods.web!.path}`, 'python3', '-c', SERVER, 'web', '8080', '9090'], { stdio: 'ignore' }));
    procs.push(spawn('nsenter', [`--net=${pods.db!.path}`, 'python3', '-c', SERVER, 'db', '5432'], { stdio: 'ignore' }));
    // The offline copy: the same manifest, with the pods' addresses as the API server would show them.
    const withIps = MANIFEST.replace(/metadata: \{ name: (frontend|web|db), namespace: shop(.*)\n/g, (line, pod: string) => `${line}status: { podIP: ${ips[pod]} }\n`);
    writeFileSync(join(offline, 'shop.yaml'), withIps);
    await until('the servers', () => connect('frontend', ips.web!, 8080), 10_000);

    // Traffic an operator would want to see: allowed, dropped, audited, learned.
    expect(connect('frontend', ips.web!, 8080)).toBe(true);
    expect(connect('frontend', ips.web!, 9090)).toBe(false); // web-ingress: http only
    expect(connect('frontend', ips.db!, 5432)).toBe(true); // db-ingress audits it
    expect(connect('frontend', API, 443)).toBe(false); // not looked up yet
    const answer = await probeQuery(pods.frontend!, { server: DNS, name: 'api.example.test', type: 'A', timeoutS: 2 });
    expect(answer.answers.map((a) => a.value)).toEqual([API]);
    expect(connect('frontend', API, 443)).toBe(true);
    expect(connect('frontend', OTHER, 443)).toBe(false);
  }, 120_000);

  afterAll(() => cleanup.run());

  it('captures every command on the running node', () => {
    /** Runs and captures `args`, which must exit `code`. */
    const run = (name: string, args: string[], code: number, opts: { runDir?: boolean } = {}) => expect(sluice(name, args, opts).status, captures.get(name)).toBe(code);
    run('status', ['status'], 0);
    run('endpoints', ['endpoints'], 0);
    run('endpoints-json', ['endpoints', '-o', 'json'], 0);
    run('fqdn', ['fqdn'], 0);
    run('observe', ['observe', '--last', '12'], 0);
    run('observe-audit', ['observe', '--verdict', 'audit'], 0);
    run('explain-deny', ['explain', '--from', 'shop/frontend', '--to', 'shop/web', '--port', '9090/TCP'], 0);
    run('explain-fqdn', ['explain', '--from', 'shop/frontend', '--to', 'api.example.test', '--port', '443/TCP', '-o', 'json'], 0);
    run('explain-offline', ['explain', '--manifests', '.', '--from', 'shop/frontend', '--to', 'shop/db', '--port', 'pg'], 0, { runDir: false });
    run('test-live', ['test', 'assertions.yaml', '--live'], 1);
    run('test-offline', ['test', 'assertions.yaml', '--manifests', '.'], 1, { runDir: false });
    run('test-offline-json', ['test', 'assertions.yaml', '--manifests', '.', '-o', 'json'], 1, { runDir: false });
    const ready = fetchInNode('/readyz');
    expect(ready.status).toBe('200');
    captures.set('readyz', `$ curl -s http://127.0.0.1:9963/readyz\n${ready.body.trimEnd()}`);
    const metrics = fetchInNode('/metrics');
    expect(metrics.status).toBe('200');
    // A readable excerpt: the Sluice families with at least one sample, the first samples of each.
    const keep: string[] = [];
    let family = '';
    let samples = 0;
    for (const line of metrics.body.split('\n')) {
      const m = /^# (HELP|TYPE) (sluice_\w+)/.exec(line);
      if (m) {
        if (m[2] !== family) samples = 0;
        family = m[2]!;
        keep.push(line);
      } else if (family && line.startsWith(family) && (samples < 3 || family === 'sluice_datapath_packets_total') && !line.includes('_bucket{')) {
        keep.push(line);
        samples++;
      }
    }
    captures.set('metrics', `$ curl -s http://127.0.0.1:9963/metrics   # the sluice_ families, three samples each (packets: all)\n${keep.join('\n')}`);
  });

  it(CAPTURE ? 'writes the captures into docs/operations.md' : 'docs/operations.md shows every capture, in the shape the commands print now', () => {
    let doc = readFileSync(DOC, 'utf8');
    const marked = [...doc.matchAll(/<!-- capture:([\w-]+) -->\n```text\n([\s\S]*?)\n```\n<!-- \/capture -->/g)];
    expect(marked.map((m) => m[1]).sort()).toEqual([...captures.keys()].sort());
    if (CAPTURE) {
      for (const [name, text] of captures) {
        doc = doc.replace(new RegExp(`<!-- capture:${name} -->\\n\`\`\`text\\n[\\s\\S]*?\\n\`\`\`\\n<!-- /capture -->`), () => `<!-- capture:${name} -->\n\`\`\`text\n${text}\n\`\`\`\n<!-- /capture -->`);
      }
      writeFileSync(DOC, doc);
      return;
    }
    for (const [, name, block] of marked) expect(shape(block!), `docs/operations.md capture:${name} (run make docs-capture)`).toEqual(shape(captures.get(name!)!));
  });
});
