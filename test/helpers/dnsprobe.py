#!/usr/bin/env python3
"""A pod's DNS client for the DNS-aware egress policy tests.

Runs inside a pod's network namespace (nsenter --net=... python3 dnsprobe.py)
with the Python 3 standard library only; its own DNS encoder and decoder, so
what goes on the wire is exactly what is asked for (no resolver library, no
/etc/resolv.conf, no retries, no search list). Every command prints one JSON
object on stdout and exits 0; failures are reported in the JSON (exit 2 only
for bad arguments).

  lookup-connect --server IP --names a,b,c --port 80 [--proto tcp|udp]
                 [--family 4|6] [--timeout 1]
      For each name in turn: one query over UDP (random ID; a reply whose ID
      or question does not match is ignored), the first A (AAAA for family 6)
      reached by following the CNAMEs of the answer from the name asked, then
      at once (no sleep) a TCP connect to ip:port, or for udp a datagram that
      must come back (echo) with our nonce. Prints
        {"results": [{"name", "rcode", "ip", "connected", "error",
                      "dns_ms", "connect_ms"}], "failures": n}
      where failures counts the names that did not connect.

  query --server IP --name N [--type A|AAAA|CNAME|TXT|SOA|NS] [--tcp]
        [--id N] [--port 53] [--timeout 1]
      Prints {"rcode", "id", "aa", "tc", "answers": [{"name", "type", "ttl",
      "value"}], "elapsed_ms", "error"}; rcode is null if nothing came back.

  send-raw --server IP [--port 53] --hex HEX [--count N] [--wait SECONDS]
      Sends the bytes as N UDP datagrams from one socket; with --wait,
      collects whatever comes back until then. Prints {"sent", "replies"}.

  stream --server IP --names a,b,c --rate 200 --seconds 10 [--timeout 1]
         [--attempts 2] [--port 53] [--until-file PATH]
      A steady client, as an application's resolver behaves: one lookup of
      the next name (round robin) every 1/rate s from one UDP socket, each
      tried up to --attempts times, --timeout s apart (glibc's
      `options timeout:1 attempts:2`), for --seconds, or until PATH exists.
      Prints {"lookups", "failed" (no answer after every attempt),
      "retried" (answered only after a retry), "unanswered" (attempts
      without an answer), "longest_stall_ms" (the longest time between two
      answers), "stall_at_s" (when it began, from the start), "p50_ms",
      "p99_ms", "max_ms" (lookup latency, retries included)}.

Names are printed without their trailing dot.
"""

import argparse
import errno
import json
import os
import random
import socket
import struct
import sys
import time

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "TXT": 16, "AAAA": 28}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
RCODES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
          "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"]
CLASS_IN = 1
rng = random.SystemRandom()


class DnsError(Exception):
    pass


def family_of(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def errname(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if getattr(e, "errno", None):
        return errno.errorcode.get(e.errno, str(e.errno)).lower()
    return str(e)


# --- wire format -------------------------------------------------------------

def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if label else b""
        if not raw or len(raw) > 63:
            raise DnsError(f"bad name {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def build_query(qid, name, qtype):
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD set
    return header + encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)


def read_name(msg, off):
    """Returns (name, offset after the name where it started)."""
    labels, end, jumps = [], None, 0
    while True:
        if off >= len(msg):
            raise DnsError("name runs past the message")
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(msg) or jumps > 64:
                raise DnsError("bad compression pointer")
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumps += 1
        elif n == 0:
            return ".".join(labels), (end if end is not None else off + 1)
        else:
            labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
            off += 1 + n


def rdata_text(msg, rtype, off, rdlen):
    rd = msg[off:off + rdlen]
    if rtype == 1 and rdlen == 4:
        return socket.inet_ntop(socket.AF_INET, rd)
    if rtype == 28 and rdlen == 16:
        return socket.inet_ntop(socket.AF_INET6, rd)
    if rtype in (2, 5):
        return read_name(msg, off)[0]
    if rtype == 16:
        parts, i = [], 0
        while i < len(rd):
            parts.append(rd[i + 1:i + 1 + rd[i]].decode("utf-8", "replace"))
            i += 1 + rd[i]
        return "".join(parts)
    if rtype == 6:
        mname, o = read_name(msg, off)
        rname, o = read_name(msg, o)
        serial, refresh, retry, expire, minimum = struct.unpack("!IIIII", msg[o:o + 20])
        return f"{mname} {rname} {serial} {refresh} {retry} {expire} {minimum}"
    return rd.hex()


def parse(msg):
    if len(msg) < 12:
        raise DnsError("short message")
    qid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    off, questions, answers = 12, [], []
    for _ in range(qd):
        name, off = read_name(msg, off)
        qtype, qclass = struct.unpack("!HH", msg[off:off + 4])
        off += 4
        questions.append((name.lower(), qtype, qclass))
    for _ in range(an):
        name, off = read_name(msg, off)
        rtype, _rclass, ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        if off + rdlen > len(msg):
            raise DnsError("record runs past the message")
        answers.append({"name": name, "type": TYPE_NAMES.get(rtype, str(rtype)), "ttl": ttl,
                        "value": rdata_text(msg, rtype, off, rdlen)})
        off += rdlen
    rcode = flags & 0xF
    return {"id": qid, "qr": bool(flags & 0x8000), "aa": bool(flags & 0x0400), "tc": bool(flags & 0x0200),
            "rcode": RCODES[rcode] if rcode < len(RCODES) else str(rcode),
            "questions": questions, "answers": answers}


def matches(reply, qid, name, qtype):
    return reply["qr"] and reply["id"] == qid and reply["questions"] == [(name.rstrip(".").lower(), qtype, CLASS_IN)]


# --- transport ---------------------------------------------------------------

def exchange(server, port, name, qtype, timeout, tcp=False, qid=None):
    """One query, one reply. Raises socket.timeout if no matching reply came."""
    qid = rng.randrange(0, 65536) if qid is None else qid
    packet = build_query(qid, name, qtype)
    deadline = time.monotonic() + timeout
    with socket.socket(family_of(server), socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((server, port))
        if tcp:
            s.sendall(struct.pack("!H", len(packet)) + packet)
            size = struct.unpack("!H", recv_exact(s, 2))[0]
            reply = parse(recv_exact(s, size))
            if not matches(reply, qid, name, qtype):
                raise DnsError("reply does not match the query")
            return reply
        s.send(packet)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            s.settimeout(left)
            try:
                reply = parse(s.recv(65535))
            except DnsError:
                continue  # garbage is not an answer: keep waiting for ours
            if matches(reply, qid, name, qtype):
                return reply


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise DnsError("connection closed mid-message")
        buf += chunk
    return buf


def first_address(answers, name, rtype):
    """Follows the answer's CNAME chain from `name` to the first `rtype` record."""
    current, seen = name.rstrip(".").lower(), set()
    while current not in seen:
        seen.add(current)
        for rr in answers:
            if rr["name"].lower() == current and rr["type"] == rtype:
                return rr["value"]
        nxt = [rr["value"] for rr in answers if rr["name"].lower() == current and rr["type"] == "CNAME"]
        if not nxt:
            return None
        current = nxt[0].lower()
    return None


def connect(ip, port, proto, timeout):
    """None if connected (TCP handshake done, or our UDP datagram echoed), else an error."""
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(family_of(ip), kind) as s:
        s.settimeout(timeout)
        try:
            if kind == socket.SOCK_STREAM:
                # Close with a reset: no TIME_WAIT, no FIN exchange after the probe.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.connect((ip, port))
                return None
            s.connect((ip, port))
            nonce = f"sluice-dnsprobe {os.getpid()} {rng.getrandbits(64)}".encode()
            s.send(nonce)
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                s.settimeout(left)
                if s.recv(2048) == nonce:
                    return None
        except OSError as e:
            return errname(e)


# --- commands ----------------------------------------------------------------

def lookup_connect(args):
    rtype = "AAAA" if args.family == 6 else "A"
    results = []
    for name in [n for n in args.names.split(",") if n]:
        r = {"name": name, "rcode": None, "ip": None, "connected": False, "error": None,
             "dns_ms": None, "connect_ms": None}
        results.append(r)
        t0 = time.monotonic()
        try:
            reply = exchange(args.server, args.dns_port, name, TYPES[rtype], args.timeout)
        except (OSError, DnsError) as e:
            r["error"] = "dns-" + errname(e)
            continue
        t1 = time.monotonic()
        r["dns_ms"] = round((t1 - t0) * 1000, 3)
        r["rcode"] = reply["rcode"]
        r["ip"] = first_address(reply["answers"], name, rtype)
        if r["ip"] is None:
            r["error"] = "no-address" if reply["rcode"] == "NOERROR" else "rcode-" + reply["rcode"].lower()
            continue
        err = connect(r["ip"], args.port, args.proto, args.timeout)
        r["connect_ms"] = round((time.monotonic() - t1) * 1000, 3)
        r["connected"], r["error"] = err is None, err
    return {"results": results, "failures": sum(1 for r in results if not r["connected"])}


def query(args):
    t0 = time.monotonic()
    out = {"rcode": None, "id": args.id, "aa": None, "tc": None, "answers": [], "elapsed_ms": None, "error": None}
    try:
        reply = exchange(args.server, args.port, args.name, TYPES[args.type], args.timeout, args.tcp, args.id)
        out.update(rcode=reply["rcode"], id=reply["id"], aa=reply["aa"], tc=reply["tc"], answers=reply["answers"])
    except (OSError, DnsError) as e:
        out["error"] = errname(e)
    out["elapsed_ms"] = round((time.monotonic() - t0) * 1000, 3)
    return out


def send_raw(args):
    data = bytes.fromhex(args.hex)
    replies = []
    with socket.socket(family_of(args.server), socket.SOCK_DGRAM) as s:
        s.connect((args.server, args.port))
        sent = 0
        for _ in range(args.count):
            try:
                s.send(data)
                sent += 1
            except OSError:
                pass  # an ICMP error from an earlier datagram: keep sending
        deadline = time.monotonic() + args.wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                replies.append(s.recv(65535).hex())
            except socket.timeout:
                break
            except OSError:
                continue
    return {"sent": sent, "replies": replies}


def stream(args):
    import select
    names = [n for n in args.names.split(",") if n]
    s = socket.socket(family_of(args.server), socket.SOCK_DGRAM)
    s.setblocking(False)
    s.connect((args.server, args.port))
    start = time.monotonic()
    interval = 1.0 / args.rate
    pending = {}  # qid -> [name, first_sent, last_sent, attempts]
    lat, lookups, failed, retried, unanswered = [], 0, 0, 0, 0
    last_answer, stall, stall_at = start, 0.0, 0.0
    next_send, i = start, 0
    done = lambda now: (now - start >= args.seconds) or (args.until_file and os.path.exists(args.until_file))
    while True:
        now = time.monotonic()
        sending = not done(now)
        if not sending and not pending:
            break
        if sending and now >= next_send:
            qid = rng.randrange(0, 65536)
            while qid in pending:
                qid = rng.randrange(0, 65536)
            name = names[i % len(names)]
            i += 1
            pending[qid] = [name, now, now, 1]
            lookups += 1
            try:
                s.send(build_query(qid, name, 1))
            except OSError:
                pass
            next_send += interval
        for qid, q in list(pending.items()):
            if now - q[2] >= args.timeout:
                unanswered += 1
                if q[3] >= args.attempts:
                    failed += 1
                    del pending[qid]
                else:
                    q[2], q[3] = now, q[3] + 1
                    try:
                        s.send(build_query(qid, q[0], 1))
                    except OSError:
                        pass
        wait = max(0.0, min(next_send - time.monotonic(), 0.01)) if sending else 0.01
        r, _, _ = select.select([s], [], [], wait)
        if not r:
            continue
        while True:
            try:
                msg = s.recv(65535)
            except (BlockingIOError, ConnectionRefusedError):
                break
            except OSError:
                break
            try:
                reply = parse(msg)
            except DnsError:
                continue
            q = pending.get(reply["id"])
            if not q or not matches(reply, reply["id"], q[0], 1):
                continue
            del pending[reply["id"]]
            t = time.monotonic()
            lat.append((t - q[1]) * 1000)
            if q[3] > 1:
                retried += 1
            if t - last_answer > stall:
                stall, stall_at = t - last_answer, last_answer - start
            last_answer = t
    # A stall still going when the sending stopped counts up to then.
    end = min(time.monotonic(), start + args.seconds)
    if end - last_answer > stall:
        stall, stall_at = end - last_answer, last_answer - start
    lat.sort()
    pick = lambda f: round(lat[min(len(lat) - 1, int(f * len(lat)))], 3) if lat else None
    return {"lookups": lookups, "failed": failed, "retried": retried, "unanswered": unanswered,
            "longest_stall_ms": round(stall * 1000, 1), "stall_at_s": round(stall_at, 2),
            "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": round(lat[-1], 3) if lat else None}


def main():
    p = argparse.ArgumentParser(description="DNS probe for the Sluice tests")
    sub = p.add_subparsers(dest="cmd", required=True)
    lc = sub.add_parser("lookup-connect")
    lc.add_argument("--server", required=True)
    lc.add_argument("--dns-port", type=int, default=53)
    lc.add_argument("--names", required=True)
    lc.add_argument("--port", type=int, required=True)
    lc.add_argument("--proto", choices=["tcp", "udp"], default="tcp")
    lc.add_argument("--family", type=int, choices=[4, 6], default=4)
    lc.add_argument("--timeout", type=float, default=1.0)
    q = sub.add_parser("query")
    q.add_argument("--server", required=True)
    q.add_argument("--port", type=int, default=53)
    q.add_argument("--name", required=True)
    q.add_argument("--type", choices=sorted(TYPES), default="A")
    q.add_argument("--tcp", action="store_true")
    q.add_argument("--id", type=int, default=None)
    q.add_argument("--timeout", type=float, default=1.0)
    r = sub.add_parser("send-raw")
    r.add_argument("--server", required=True)
    r.add_argument("--port", type=int, default=53)
    r.add_argument("--hex", required=True)
    r.add_argument("--count", type=int, default=1)
    r.add_argument("--wait", type=float, default=0.0)
    st = sub.add_parser("stream")
    st.add_argument("--server", required=True)
    st.add_argument("--port", type=int, default=53)
    st.add_argument("--names", required=True)
    st.add_argument("--rate", type=float, default=200.0)
    st.add_argument("--seconds", type=float, default=10.0)
    st.add_argument("--timeout", type=float, default=1.0)
    st.add_argument("--attempts", type=int, default=2)
    st.add_argument("--until-file", default="")
    args = p.parse_args()
    run = {"lookup-connect": lookup_connect, "query": query, "send-raw": send_raw, "stream": stream}[args.cmd]
    sys.stdout.write(json.dumps(run(args)) + "\n")


if __name__ == "__main__":
    try:
        main()
    except (KeyboardInterrupt, BrokenPipeError):
        pass
