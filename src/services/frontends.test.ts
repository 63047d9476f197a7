import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../store/index.js';
import { compileFrontends } from './frontends.js';

const svc = (name: string, spec: Record<string, unknown>, status?: Record<string, unknown>): KubeObject =>
  ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'ns' }, spec, ...(status ? { status } : {}) }) as KubeObject;
const slice = (name: string, service: string, addressType: string, endpoints: unknown[], ports: unknown[]): KubeObject =>
  ({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name, namespace: 'ns', labels: { 'kubernetes.io/service-name': service } }, addressType, endpoints, ports }) as unknown as KubeObject;
const ep = (ip: string, conditions: Record<string, boolean> = {}) => ({ addresses: [ip], conditions });

describe('compileFrontends: Services and EndpointSlices → frontends', () => {
  it('maps each Service port to the slice port of the same name (a named targetPort per backend), ready endpoints only, both families', () => {
    const out = compileFrontends(
      [svc('web', { clusterIPs: ['10.96.0.10', 'fd00:96::10'], ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }] })],
      [
        slice('web-a', 'web', 'IPv4', [ep('10.0.0.2'), ep('10.0.0.3', { ready: false }), ep('10.0.0.1', {})], [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'dns', port: 5353, protocol: 'UDP' }]),
        slice('web-b', 'web', 'IPv6', [ep('fd00::2')], [{ name: 'http', port: 8081, protocol: 'TCP' }]),
        slice('other', 'other', 'IPv4', [ep('10.9.9.9')], [{ name: 'http', port: 1, protocol: 'TCP' }]),
      ],
      [],
    );
    const byKey = Object.fromEntries(out.map((f) => [`${f.key.ip}:${f.key.port}/${f.key.protocol}`, f.backends.map((b) => `${b.ip}:${b.port}`)]));
    expect(byKey).toEqual({
      '10.96.0.10:80/6': ['10.0.0.1:8080', '10.0.0.2:8080'],
      '10.96.0.10:53/17': ['10.0.0.1:5353', '10.0.0.2:5353'],
      'fd00:96::10:80/6': ['fd00::2:8081'],
      'fd00:96::10:53/17': [],
    });
  });

  it('adds external IPs, load-balancer IPs and, for NodePort and LoadBalancer Services, every node address on the nodePort', () => {
    const out = compileFrontends(
      [svc('np', { type: 'NodePort', clusterIP: '10.96.0.11', externalIPs: ['192.0.2.7'], ports: [{ port: 80, nodePort: 30080 }] }, { loadBalancer: { ingress: [{ ip: '198.51.100.1' }] } })],
      [slice('np-1', 'np', 'IPv4', [ep('10.0.0.5')], [{ port: 9376, protocol: 'TCP' }])],
      ['10.200.0.11', '10.200.0.12'],
    );
    expect(out.map((f) => `${f.key.ip}:${f.key.port}`).sort()).toEqual(['10.200.0.11:30080', '10.200.0.12:30080', '10.96.0.11:80', '192.0.2.7:80', '198.51.100.1:80']);
    for (const f of out) expect(f.backends).toEqual([{ family: 4, ip: '10.0.0.5', port: 9376 }]);
  });

  it('a ClusterIP Service ignores its nodePort; headless, ExternalName and SCTP have no frontend; no ready endpoint falls back to serving-and-terminating ones', () => {
    const out = compileFrontends(
      [
        svc('cip', { clusterIP: '10.96.0.12', ports: [{ port: 80, nodePort: 30000 }, { port: 9, protocol: 'SCTP' }] }),
        svc('headless', { clusterIP: 'None', ports: [{ port: 80 }] }),
        svc('ext', { type: 'ExternalName', externalName: 'example.com', ports: [{ port: 80 }] }),
      ],
      [slice('cip-1', 'cip', 'IPv4', [ep('10.0.0.8', { ready: false, serving: true, terminating: true }), ep('10.0.0.9', { ready: false, serving: false, terminating: true })], [{ port: 80, protocol: 'TCP' }])],
      ['10.200.0.11'],
    );
    expect(out).toEqual([{ key: { family: 4, protocol: 6, ip: '10.96.0.12', port: 80 }, backends: [{ family: 4, ip: '10.0.0.8', port: 80 }], service: 'ns/cip' }]);
  });
});
