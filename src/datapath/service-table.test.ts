import { describe, expect, it } from 'vitest';
import { fakeDatapath } from '../../test/fakes/bpf-addon.js';
import { MAP_LB_BE, MAP_LB_NETNS, MAP_LB_SVC } from './datapath.js';
import { ServiceTable, type Frontend } from './service-table.js';

const fe = (ip: string, port: number, backends: Array<[string, number]>): Frontend => ({
  key: { family: 4, protocol: 6, ip, port },
  backends: backends.map(([bip, bport]) => ({ family: 4, ip: bip, port: bport })),
});

describe('ServiceTable', () => {
  it('writes frontends with backends in slots, rewrites only what changed (rev bumped), removes what is gone, and a new owner adopts the maps', () => {
    const { addon, dp } = fakeDatapath();
    const t = dp.services;
    expect(t.sync([fe('10.96.0.10', 80, [['10.0.0.1', 8080], ['10.0.0.2', 8080]]), fe('10.96.0.11', 53, [])])).toBe(2);
    expect(t.sync([fe('10.96.0.10', 80, [['10.0.0.1', 8080], ['10.0.0.2', 8080]]), fe('10.96.0.11', 53, [])])).toBe(0);
    // Shrink: one backend left; its slot 1 goes.
    expect(t.sync([fe('10.96.0.10', 80, [['10.0.0.2', 8080]]), fe('10.96.0.11', 53, [])])).toBe(1);
    expect(t.frontends().find((f) => f.key.port === 80)!.backends).toEqual([{ family: 4, ip: '10.0.0.2', port: 8080 }]);
    expect(addon.map('sluice_lb_be_v1').entries.size).toBe(1);
    // A second Datapath over the same maps (a restarted agent) sees the same and writes nothing.
    const names = { svc: MAP_LB_SVC, be: MAP_LB_BE, netns: MAP_LB_NETNS };
    const again = { services: new ServiceTable(addon, { svc: dp.mapFd(MAP_LB_SVC), be: dp.mapFd(MAP_LB_BE), netns: dp.mapFd(MAP_LB_NETNS) }, names) };
    expect(again.services.frontends().map((f) => [f.key.ip, f.backends.length]).sort()).toEqual([['10.96.0.10', 1], ['10.96.0.11', 0]]);
    expect(again.services.sync([fe('10.96.0.10', 80, [['10.0.0.2', 8080]])])).toBe(1); // only the removal
    expect(addon.map('sluice_lb_svc_v1').entries.size).toBe(1);
  });

  it('keeps exactly the given pods\' netns cookies', () => {
    const { addon, dp } = fakeDatapath();
    dp.services.syncPods(new Map([['18446744073709551615', 7], ['42', 8]]));
    dp.services.syncPods(new Map([['42', 9]]));
    const m = addon.map('sluice_lb_netns_v1').entries;
    expect(m.size).toBe(1);
    expect([...m.values()][0]!.readUInt32LE(0)).toBe(9);
  });
});
