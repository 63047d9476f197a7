// Test peers that answer on every address of their netns: line-echo TCP
// servers and a UDP echo server (IPV6_V6ONLY off, IP_TRANSPARENT so they also
// accept addresses the netns owns only through `local` routes). Each runs
// in the foreground under nsenter; the Cleanup kills it.
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Cleanup, Netns } from './netns.js';

const ECHO = `import socket,sys,threading
def tcp(port):
  s=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
  s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0);s.setsockopt(socket.SOL_IP,19,1)
  s.bind(('::',port));s.listen(512)
  while True:
    c,_=s.accept();threading.Thread(target=echo,args=(c,),daemon=True).start()
def echo(c):
  try:
    while True:
      d=c.recv(4096)
      if not d: break
      c.sendall(d)
  except OSError: pass
  c.close()
def udp(port):
  s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)
  s.bind(('::',port))
  while True:
    d,a=s.recvfrom(4096);s.sendto(d,a)
tcps,udps=sys.argv[1],sys.argv[2]
for p in filter(None,tcps.split(',')): threading.Thread(target=tcp,args=(int(p),),daemon=True).start()
for p in filter(None,udps.split(',')): threading.Thread(target=udp,args=(int(p),),daemon=True).start()
threading.Event().wait()`;

/** TCP (line echo) and UDP (echo) servers on `tcp` and `udp` ports of every address in `ns`. */
export function startEchoServers(cleanup: Cleanup, ns: Netns, ports: { tcp?: number[]; udp?: number[] }): void {
  const p = spawn('nsenter', [`--net=${ns.path}`, 'python3', '-c', ECHO, (ports.tcp ?? []).join(','), (ports.udp ?? []).join(',')], { stdio: 'ignore' });
  cleanup.add(() => {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  });
}

/** A TCP connect (or a UDP echo) from `ns` to ip:port within `timeoutS`. */
export function reach(ns: Netns, ip: string, port: number, proto: 'tcp' | 'udp' = 'tcp', timeoutS = 0.5): boolean {
  const fam = ip.includes(':') ? 'socket.AF_INET6' : 'socket.AF_INET';
  const code =
    proto === 'tcp'
      ? `import socket;s=socket.socket(${fam});s.settimeout(${timeoutS});s.connect(('${ip}',${port}))`
      : `import socket;s=socket.socket(${fam},socket.SOCK_DGRAM);s.settimeout(${timeoutS});s.sendto(b'x',('${ip}',${port}));assert s.recv(9)==b'x'`;
  return spawnSync('nsenter', [`--net=${ns.path}`, 'python3', '-c', code]).status === 0;
}

/**
 * One TCP connection with a request and its echo: the local port, or 'ERR'.
 * With `sport`, from that source port, closed with a RST (no TIME_WAIT: the
 * same 5-tuple can connect again at once).
 */
export function talk(ns: Netns, ip: string, port = 8080, sport?: number): string {
  const fam = ip.includes(':') ? 'socket.AF_INET6' : 'socket.AF_INET';
  const bind = sport ? `s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.setsockopt(socket.SOL_SOCKET,socket.SO_LINGER,struct.pack('ii',1,0));s.bind(('',${sport}))` : 'pass';
  const r = spawnSync('nsenter', [`--net=${ns.path}`, 'python3', '-c', `import socket,struct;s=socket.socket(${fam});s.settimeout(1);${bind}
try:
  s.connect(('${ip}',${port}));s.sendall(b'x'*100000+b'\\n');got=b''
  while len(got)<100001:
    d=s.recv(65536)
    if not d: break
    got+=d
  print(s.getsockname()[1] if len(got)==100001 else 'SHORT')
except OSError as e: print('ERR', e.errno or type(e).__name__)`], { encoding: 'utf8', timeout: 5000 });
  return r.stdout.trim();
}

/**
 * A TCP connection held open from `ns`: each roundTrip() sends a line and
 * waits (2 s at most) for its echo; false once the connection failed.
 */
export function holdConnection(ns: Netns, ip: string, port = 8080): { roundTrip(): Promise<boolean>; close(): void } {
  const child = spawn('nsenter', [`--net=${ns.path}`, 'python3', '-u', '-c', `import socket,sys
s=socket.create_connection(('${ip}',${port}),timeout=2)
for line in sys.stdin:
  try:
    s.sendall(b'ping\\n');got=b''
    while len(got)<5:
      d=s.recv(64)
      if not d: raise OSError('closed')
      got+=d
    print('ok')
  except OSError as e:
    print('ERR', e);break`], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return {
    async roundTrip() {
      child.stdin!.write('\n');
      const next = await lines.next();
      return !next.done && next.value === 'ok';
    },
    close() {
      child.kill();
    },
  };
}
