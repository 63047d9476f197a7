#!/usr/bin/env python3
"""A pod's test workload for the NetworkPolicy truth-table suite.

Runs inside the pod's network namespace (nsenter --net=... python3 prober.py)
and, with the Python 3 standard library only:

- serves TCP 80 and TCP 81 (accept, then close) and UDP 80 (echo), on both
  address families;
- reads commands, one JSON object per line, on stdin:
      {"id": 7, "timeout_ms": 400,
       "probes": [["10.66.0.3", 80, "tcp"], ["fd00:66::3", 80, "udp"], ...]}
  runs every probe of the command at once (non-blocking sockets, one
  selector), each with the same deadline, and answers with one line:
      {"id": 7, "results": ["ok", "timeout", "refused", ...]}
  in the order asked. Only "ok" is a success: the TCP handshake completed,
  or the UDP echo came back with our nonce.
- writes {"ready": true, ...} once its servers listen; exits when stdin
  closes (so a dead test runner never leaves a prober behind).

Every probe binds its own source port from a counter that walks a fixed range
and does not wrap within a run, so a probe never reuses the 5-tuple of an
earlier one: a stateful datapath must not be able to let a probe through on
the strength of an older, allowed flow's connection-tracking entry.
"""

import errno
import json
import os
import selectors
import socket
import struct
import sys
import threading
import time

TCP_PORTS = (80, 81)
UDP_PORTS = (80,)
SRC_PORT_FIRST = 20000
SRC_PORT_LAST = 60999


def log(msg):
    sys.stderr.write(f"prober[{os.getpid()}]: {msg}\n")
    sys.stderr.flush()


def dual_stack(kind):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    return s


def serve(listeners, udp):
    """Accept-and-close on the TCP listeners, echo on the UDP sockets."""
    sel = selectors.DefaultSelector()
    for s in listeners:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "tcp")
    for s in udp:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "udp")
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            try:
                if key.data == "tcp":
                    conn, _addr = s.accept()
                    conn.close()
                else:
                    data, addr = s.recvfrom(2048)
                    s.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:  # a peer reset before accept, an ICMP error: keep serving
                log(f"server: {e}")


class Prober:
    def __init__(self):
        self.next_port = SRC_PORT_FIRST
        self.nonce = 0

    def _bind(self, s, family):
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"
        for _ in range(64):
            port = self.next_port
            self.next_port = SRC_PORT_FIRST if port >= SRC_PORT_LAST else port + 1
            try:
                s.bind((host, port))
                return
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
        s.bind((host, 0))

    def run(self, probes, timeout):
        sel = selectors.DefaultSelector()
        results = ["timeout"] * len(probes)
        socks = []
        pending = 0
        for i, (ip, port, proto) in enumerate(probes):
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
            s = socket.socket(family, kind)
            socks.append(s)
            try:
                s.setblocking(False)
                self._bind(s, family)
                if kind == socket.SOCK_STREAM:
                    # Close with a reset: no TIME_WAIT, no FIN exchange after the probe.
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    rc = s.connect_ex((ip, port))
                    if rc == 0:
                        results[i] = "ok"
                        continue
                    if rc not in (errno.EINPROGRESS, errno.EAGAIN):
                        results[i] = errno.errorcode.get(rc, str(rc)).lower()
                        continue
                    sel.register(s, selectors.EVENT_WRITE, (i, None))
                else:
                    s.connect((ip, port))
                    self.nonce += 1
                    payload = f"sluice-probe {os.getpid()} {self.nonce}".encode()
                    s.send(payload)
                    sel.register(s, selectors.EVENT_READ, (i, payload))
                pending += 1
            except OSError as e:
                results[i] = errno.errorcode.get(e.errno or 0, str(e)).lower() if e.errno else str(e)
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(left):
                i, payload = key.data
                s = key.fileobj
                if payload is None:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    results[i] = "ok" if err == 0 else errno.errorcode.get(err, str(err)).lower()
                else:
                    try:
                        data = s.recv(2048)
                        if data != payload:
                            continue  # not our echo: keep waiting
                        results[i] = "ok"
                    except OSError as e:  # ICMP port/host unreachable
                        results[i] = errno.errorcode.get(e.errno or 0, str(e)).lower()
                sel.unregister(s)
                pending -= 1
        sel.close()
        for s in socks:
            s.close()
        return results


def main():
    listeners, udp = [], []
    for port in TCP_PORTS:
        s = dual_stack(socket.SOCK_STREAM)
        s.bind(("::", port))
        s.listen(256)
        listeners.append(s)
    for port in UDP_PORTS:
        s = dual_stack(socket.SOCK_DGRAM)
        s.bind(("::", port))
        udp.append(s)
    threading.Thread(target=serve, args=(listeners, udp), daemon=True).start()

    out = sys.stdout
    out.write(json.dumps({"ready": True, "pid": os.getpid(), "tcp": list(TCP_PORTS), "udp": list(UDP_PORTS)}) + "\n")
    out.flush()
    prober = Prober()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        cmd = None
        try:
            cmd = json.loads(line)
            probes = [(str(p[0]), int(p[1]), str(p[2])) for p in cmd["probes"]]
            timeout = float(cmd.get("timeout_ms", 400)) / 1000.0
            reply = {"id": cmd.get("id"), "results": prober.run(probes, timeout)}
        except Exception as e:  # a bad command must not kill the pod's servers
            reply = {"id": cmd.get("id") if isinstance(cmd, dict) else None, "error": repr(e)}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    try:
        main()
    except (KeyboardInterrupt, BrokenPipeError):
        pass
