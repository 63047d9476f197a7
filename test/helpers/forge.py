"""Sends hand-made packets out of a pod's interface, as a hostile pod would.

Usage: nsenter --net=POD python3 forge.py IFNAME < packets.json

Each packet is a JSON object; frames go out through an AF_PACKET socket to
the MAC of the interface's permanent neighbour (the pod's gateway), so any
source address, hop limit or fragmentation can be forged:
  family 4|6, src, dst, proto "udp"|"tcp"|"icmp", sport, dport,
  payload (text), hex (payload as hex, instead), ttl (hop limit),
  flags (TCP, default "S"), icmp_type, icmp_code, icmp_id,
  fragments: [[offset, length], ...] slices of the L4 segment (header +
      payload) sent as fragments of one datagram, in that order; MF is set
      unless a slice reaches the end; offsets are multiples of 8
  frag_id, patch: {"offset": n, "hex": "..."} applied to the segment of
      every slice after the first (to forge overlapping content).
Prints the number of frames sent.
"""
import json
import os
import socket
import struct
import subprocess
import sys

def csum(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def addr(family, a):
    return socket.inet_pton(socket.AF_INET if family == 4 else socket.AF_INET6, a)

def l4(p):
    fam, proto = p['family'], p['proto']
    src, dst = addr(fam, p['src']), addr(fam, p['dst'])
    data = bytes.fromhex(p['hex']) if 'hex' in p else p.get('payload', '').encode()
    if proto == 'udp':
        num = 17
        hdr = struct.pack('!HHHH', p.get('sport', 40000), p.get('dport', 53), 8 + len(data), 0)
    elif proto == 'tcp':
        num = 6
        flags = 0
        for f in p.get('flags', 'S'):
            flags |= {'F': 1, 'S': 2, 'R': 4, 'P': 8, 'A': 16}[f]
        hdr = struct.pack('!HHIIBBHHH', p.get('sport', 40000), p.get('dport', 80), p.get('seq', 1000), p.get('ack', 0), 5 << 4, flags, 64240, 0, 0)
    elif proto == 'icmp':
        num = 1 if fam == 4 else 58
        hdr = struct.pack('!BBHHH', p.get('icmp_type', 8 if fam == 4 else 128), p.get('icmp_code', 0), 0, p.get('icmp_id', 77), 1)
    else:
        raise SystemExit('unknown proto %r' % proto)
    seg = hdr + data
    if fam == 6:
        pseudo = src + dst + struct.pack('!IxxxB', len(seg), num)
    else:
        pseudo = src + dst + struct.pack('!xBH', num, len(seg))
    c = csum((b'' if (fam == 4 and num == 1) else pseudo) + seg)
    off = {17: 6, 6: 16, 1: 2, 58: 2}[num]
    if num == 17 and c == 0:
        c = 0xffff
    seg = seg[:off] + struct.pack('!H', c) + seg[off + 2:]
    return num, src, dst, seg

def ip4(p, num, src, dst, body, frag_field=0):
    ttl = p.get('ttl', 64)
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(body), p.get('frag_id', 4242) & 0xffff, frag_field, ttl, num, 0, src, dst)
    h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
    return h + body

def ip6(p, nexthdr, src, dst, body):
    return struct.pack('!IHBB16s16s', 6 << 28, len(body), nexthdr, p.get('ttl', 64), src, dst) + body

def packets(p):
    num, src, dst, seg = l4(p)
    fam = p['family']
    if 'fragments' not in p:
        return [ip4(p, num, src, dst, seg) if fam == 4 else ip6(p, num, src, dst, seg)]
    out = []
    for i, (off, length) in enumerate(p['fragments']):
        s = seg
        if i > 0 and 'patch' in p:
            po, ph = p['patch']['offset'], bytes.fromhex(p['patch']['hex'])
            s = s[:po] + ph + s[po + len(ph):]
        part = s[off:off + length]
        more = off + length < len(seg)
        if fam == 4:
            out.append(ip4(p, num, src, dst, part, (0x2000 if more else 0) | (off // 8)))
        else:
            fh = struct.pack('!BBHI', num, 0, (off // 8) << 3 | (1 if more else 0), p.get('frag_id', 4242))
            out.append(ip6(p, 44, src, dst, fh + part))
    return out

def gateway_mac(ifname):
    for n in json.loads(subprocess.check_output(['ip', '-j', 'neigh', 'show', 'dev', ifname])):
        if 'PERMANENT' in n.get('state', []) and n.get('lladdr'):
            return n['lladdr']
    raise SystemExit('no permanent neighbour on ' + ifname)

def main():
    ifname = sys.argv[1]
    specs = json.load(sys.stdin)
    dmac = bytes.fromhex(gateway_mac(ifname).replace(':', ''))
    # The interface's own MAC from the netns itself (nsenter --net keeps the
    # caller's /sys, which shows the host's interfaces).
    smac = bytes.fromhex(json.loads(subprocess.check_output(['ip', '-j', 'link', 'show', 'dev', ifname]))[0]['address'].replace(':', ''))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    sent = 0
    for p in specs:
        ethertype = 0x0800 if p['family'] == 4 else 0x86DD
        for pkt in packets(p):
            s.send(dmac + smac + struct.pack('!H', ethertype) + pkt)
            sent += 1
    print(sent)

main()
