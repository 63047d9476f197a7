import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { LinkInfo } from '../native/index.js';
import { isNodeLink, NodeLinks } from './node-links.js';

const link = (ifindex: number, name: string, mac = '02:00:00:00:00:01'): LinkInfo => ({ ifindex, name, mac, mtu: 1500, up: true });
const silent = pino({ level: 'silent' });

describe('NodeLinks: sluice_from_node on the node\'s own links', () => {
  it('takes Ethernet-like links, never lo, the pods\' host veths or links without a 6-byte address', () => {
    expect(isNodeLink(link(2, 'eth0'))).toBe(true);
    expect(isNodeLink(link(3, 'br0'))).toBe(true);
    expect(isNodeLink(link(1, 'lo', '00:00:00:00:00:00'))).toBe(false);
    expect(isNodeLink(link(4, 'slc0123456789a'))).toBe(false);
    expect(isNodeLink(link(5, 'wg0', ''))).toBe(false);
  });

  it('attaches each link once, a link made again (new ifindex) again, and retries one that failed', () => {
    let links = [link(1, 'lo', '00:00:00:00:00:00'), link(2, 'eth0'), link(3, 'slc0123456789a'), link(4, 'eth1')];
    const attached: string[] = [];
    let failEth1 = true;
    const nl = new NodeLinks(
      () => links,
      (name) => {
        if (name === 'eth1' && failEth1) throw new Error('EBUSY');
        attached.push(name);
      },
      silent,
    );
    nl.refresh();
    expect(attached).toEqual(['eth0']);
    expect(nl.attached()).toEqual(['eth0']);
    failEth1 = false;
    nl.refresh();
    expect(attached).toEqual(['eth0', 'eth1']);
    // eth0 deleted and made again: a new ifindex, attached again; nothing else repeats.
    links = [link(4, 'eth1'), link(9, 'eth0')];
    nl.refresh();
    expect(attached).toEqual(['eth0', 'eth1', 'eth0']);
    expect(nl.attached()).toEqual(['eth0', 'eth1']);
  });

  it('keeps what it has when the links cannot be listed', () => {
    let fail = false;
    const attached: string[] = [];
    const nl = new NodeLinks(
      () => {
        if (fail) throw new Error('netlink');
        return [link(2, 'eth0')];
      },
      (name) => void attached.push(name),
      silent,
    );
    nl.refresh();
    fail = true;
    nl.refresh();
    expect(nl.attached()).toEqual(['eth0']);
    expect(attached).toEqual(['eth0']);
  });
});
