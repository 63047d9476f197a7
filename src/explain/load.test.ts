import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ExplainCode } from './errors.js';
import { loadWorld } from './load.js';

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function manifests(files: Record<string, string>): string {
  dir = mkdtempSync(join(tmpdir(), 'sluice-explain-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const pod = (name: string, status = '', ports = '') => `apiVersion: v1\nkind: Pod\nmetadata: { name: ${name}, namespace: x, labels: { app: ${name} } }\n${ports ? `spec: { containers: [ { name: c, ports: [ ${ports} ] } ] }\n` : ''}${status ? `status: ${status}\n` : ''}`;

describe('loadWorld', () => {
  it('reads every *.yaml and *.yml (several documents each), nothing else; pods with their named ports and status addresses', () => {
    const w = loadWorld(
      manifests({
        'a.yaml': `${pod('a', '{ podIPs: [ { ip: 10.0.0.1 }, { ip: "FD00::0001" } ], podIP: 10.9.9.9 }', '{ name: http, containerPort: 8080 }')}---\n${pod('b', '{ podIP: 10.0.0.2 }')}`,
        'b.yml': pod('c'),
        'notes.txt': 'not: [yaml',
      }),
    );
    expect([...w.pods.values()]).toEqual([
      { name: 'x/a', ips: ['10.0.0.1', 'fd00::1'], namedPorts: [{ name: 'http', protocol: 'TCP', port: 8080 }] },
      { name: 'x/b', ips: ['10.0.0.2'], namedPorts: [] },
      { name: 'x/c', ips: [], namedPorts: [] },
    ]);
    expect(w.byIp.get('fd00::1')?.name).toBe('x/a');
  });

  it.each([
    ['a YAML error', { 'good.yaml': pod('a'), 'bad.yaml': 'kind: [' }, /^bad\.yaml#1: /],
    ['an invalid policy', { 'np.yaml': 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: { name: p, namespace: x }\nspec: { podSelector: { matchLabels: { "bad key!": x } } }\n' }, /^np\.yaml#1: /],
    ['a kind Sluice reads with a wrong apiVersion', { 'k.yaml': 'apiVersion: v2\nkind: Pod\nmetadata: { name: d }\n' }, /^k\.yaml#1: Pod needs apiVersion v1/],
    ['an object defined twice', { 'a.yaml': pod('a'), 'b.yaml': pod('a') }, /^b\.yaml: Pod\/x\/a is already defined in a\.yaml$/],
    ['a pod address that is none', { 'a.yaml': pod('a', '{ podIP: 10.0.0.300 }') }, /^a\.yaml: Pod x\/a: status\.podIPs holds "10\.0\.0\.300", which is not an IP address$/],
  ])('fails the whole load on %s, naming the file', (_what, files, message) => {
    expect(() => loadWorld(manifests(files))).toThrow(expect.objectContaining({ code: ExplainCode.BAD_MANIFESTS, message: expect.stringMatching(message) }));
  });

  it('leaves out the kinds it does not read (a repository\'s Deployments, its Assertions files) and reads the rest', () => {
    const w = loadWorld(manifests({ 'k.yaml': `apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: d }\n---\n${pod('a')}`, 't.yaml': 'apiVersion: sluice.dev/v1alpha1\nkind: Assertions\nassertions: []\n' }));
    expect([...w.pods.keys()]).toEqual(['x/a']);
  });

  it('a directory that cannot be read is an error too', () => {
    manifests({});
    expect(() => loadWorld(join(dir, 'missing'))).toThrow(expect.objectContaining({ code: ExplainCode.BAD_MANIFESTS, message: expect.stringMatching(/^--manifests .*missing: ENOENT/) }));
  });
});
