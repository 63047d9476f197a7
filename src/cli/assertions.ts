// `sluice test ASSERTIONS.yaml…`: expectations about flows (PRODUCT.md §7),
// judged offline against a manifest directory (a policy repository's CI: no
// cluster, no agent, no root) or live against the agent, where each flow is
// also tried for real from the source pod's network namespace and a probe
// that contradicts the compiled verdict fails the assertion too.
import { readFileSync } from 'node:fs';
import { call, type Reply } from '../api/index.js';
import { formatFlags, parseArgs, UsageError, type FlagSpec } from '../config/index.js';
import { explain, loadWorld, parseAssertions, passed, resultJson, resultsTable, type Assertion, type AssertionResult, type ProbeReport } from '../explain/index.js';
import { native, type ProbeResult } from '../native/index.js';
import { SOURCE_FLAGS, sourceOf, usage } from './explain.js';
import { COMMON_FLAGS } from './operator.js';
import { outputFormat } from './output.js';

const FLAGS: readonly FlagSpec[] = [...SOURCE_FLAGS, ...COMMON_FLAGS];

export const TEST_USAGE = `Usage: sluice test FILE... (--manifests DIR | --live) [flags]

Checks each assertion of the files (YAML, several documents each allowed):

  apiVersion: sluice.dev/v1alpha1
  kind: Assertions
  assertions:
  - from: x/a          # a pod NS/NAME (or an IP address)
    to: y/b            # a pod NS/NAME, an IP address, or a DNS name
    port: 80/TCP       # NUMBER/TCP|UDP|SCTP (no protocol: TCP), or a port name of the destination pod
    expect: allow      # allow | deny

against the verdict \`sluice explain\` gives. --manifests DIR judges offline
(no agent, no root); --live asks the running agent and, as root on the node,
also probes every flow whose source pod is on this node from that pod's
network namespace (TCP connect; UDP datagram, a silent one confirmed by the
agent's flow log): a probe that disagrees with the compiled verdict fails
the assertion. Prints one line per assertion, "ok" or "FAIL" (a failure's
explain chain follows, indented), then "N passed, M failed"; -o json prints
one JSON object per line per assertion. See docs/policy-testing.md.

Exit status: 0 if every assertion passed, 1 if one failed (or the agent
cannot answer), 2 for a usage error, an assertions file or a manifest that
does not parse, or an assertion naming a pod or port that does not exist.

Flags:
${formatFlags(FLAGS)}
`;

/** How long a probe waits for a handshake or an answer. */
const PROBE_TIMEOUT_MS = 1000;
/** Probes in flight at once (each holds a libuv worker for up to the timeout). */
const PROBE_PARALLEL = 4;
/** A silent UDP probe: how often and how many times the flow log is asked for its drop (it drains every 50 ms). */
const DROP_POLL_MS = 100;
const DROP_POLLS = 4;

export async function testCommand(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs(argv, FLAGS);
  if (flags.help === 'true') {
    process.stdout.write(TEST_USAGE);
    return 0;
  }
  const format = outputFormat(flags.output);
  const manifests = sourceOf(flags);
  if (!manifests && flags.live !== 'true') throw new UsageError('give --manifests DIR (offline) or --live (the running agent)');
  if (!positional.length) throw new UsageError('no assertions file given');
  const assertions = positional.flatMap((file) => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`${file}: ${(err as Error).message}`);
    }
    return usage(() => parseAssertions(text, file));
  });
  const results = manifests ? offline(manifests, assertions) : await live(flags['run-dir']!, assertions);
  if (format === 'json') for (const r of results) process.stdout.write(`${JSON.stringify(resultJson(r))}\n`);
  else process.stdout.write(resultsTable(results));
  return results.every(passed) ? 0 : 1;
}

const queryOf = (a: Assertion) => ({ from: a.from, to: a.to, port: String(a.port) });

function offline(dir: string, assertions: readonly Assertion[]): AssertionResult[] {
  const world = usage(() => loadWorld(dir));
  return assertions.map((a) => ({ assertion: a, explanation: usage(() => explain(world, queryOf(a)), a.where) }));
}

async function live(runDir: string, assertions: readonly Assertion[]): Promise<AssertionResult[]> {
  if (process.getuid?.() !== 0) throw new UsageError("--live probes from the pods' network namespaces: run it as root on the node");
  const replies: Array<Reply<'explain'>> = [];
  for (const a of assertions) {
    try {
      replies.push(await call(runDir, 'explain', queryOf(a)));
    } catch (err) {
      // A pod the agent does not know is the assertion's fault, as offline.
      const code = (err as { code?: string }).code;
      if (code === 'SLUICE_API_NOT_FOUND' || code === 'SLUICE_API_BAD_PARAMS') throw new UsageError(`${a.where}: ${(err as Error).message}`);
      throw err;
    }
  }
  const local = new Set((await call(runDir, 'endpoints')).map((e) => e.pod));
  const probes = await inPool(
    replies.map((reply) => () => probeFlow(runDir, reply, local)),
    PROBE_PARALLEL,
  );
  return assertions.map((a, i) => {
    const { netns: _netns, ...explanation } = replies[i]!;
    return { assertion: a, explanation, probe: probes[i]! };
  });
}

/** Runs the tasks with at most `n` at once; results in order. */
async function inPool<T>(tasks: ReadonlyArray<() => Promise<T>>, n: number): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
  return out;
}

// ------------------------------------------------------------------ probes

type Probed = ProbeReport['probes'][number];

/**
 * Each address of the flow, tried from the source pod's netns (the
 * addresses one after the other: an assertion holds at most one per family,
 * or a name's few learned ones).
 */
async function probeFlow(runDir: string, reply: Reply<'explain'>, local: ReadonlySet<string>): Promise<ProbeReport> {
  const notProbed = (why: string): ProbeReport => ({ agrees: true, text: `not probed (${why})`, probes: [] });
  if (!reply.netns) return notProbed('the source is not a pod on this node');
  const [port, protocol] = reply.judged.split('/') as [string, 'TCP' | 'UDP' | 'SCTP'];
  if (protocol === 'SCTP') return notProbed('SCTP is not probed');
  const paths = reply.paths.filter((p) => p.destination);
  if (!paths.length) return notProbed('no address to try: nothing learned for the name yet');
  const texts: string[] = [];
  const probes: Probed[] = [];
  let agrees = true;
  for (const path of paths) {
    const dest = path.destination!;
    const result = await native().probe(reply.netns, dest.includes(':') ? 6 : 4, protocol === 'TCP' ? 'tcp' : 'udp', dest, Number(port), PROBE_TIMEOUT_MS);
    const probed = await judgeProbe(runDir, protocol, dest, Number(port), result);
    const verdict = probed.verdict === 'allow-unconfirmed' ? 'allow' : probed.verdict;
    // A silent UDP flow the compiled policy denies on another node's pod cannot be confirmed from here.
    const elsewhere = probed.verdict === 'allow-unconfirmed' && path.verdict === 'deny' && path.steps.some((s) => s.outcome === 'deny' && !local.has(s.pod));
    const disagrees = verdict !== 'inconclusive' && verdict !== path.verdict && !elsewhere;
    if (disagrees) agrees = false;
    probes.push(probed);
    texts.push(`${paths.length > 1 ? `${dest}: ` : ''}${probed.result}${disagrees ? ` (so: ${verdict})` : ''}`);
  }
  return { agrees, text: texts.join('; '), probes };
}

/**
 * What a probe says of policy. TCP: connected or refused (an RST came back:
 * the SYN got through) allow, a timeout denies. UDP: a reply or refused (ICMP
 * port unreachable) allow; silence is a deny only if the agent's flow log
 * has the drop (else allow-unconfirmed: the server may just not answer).
 * Any other error (no route) is the network's, not policy's: inconclusive.
 */
async function judgeProbe(runDir: string, protocol: 'TCP' | 'UDP', dest: string, port: number, r: ProbeResult): Promise<Probed> {
  const probed = (result: string, verdict: Probed['verdict']): Probed => ({ destination: dest, result, verdict });
  if (r.outcome === 'connected' || r.outcome === 'reply' || r.outcome === 'refused') return probed(r.outcome, 'allow');
  if (r.outcome === 'error') return probed(`error ${r.error}`, 'inconclusive');
  if (protocol === 'TCP') return probed('timeout', 'deny');
  for (let i = 0; i < DROP_POLLS; i++) {
    await new Promise((resolve) => setTimeout(resolve, DROP_POLL_MS));
    const drop = (await call(runDir, 'flows', { verdict: 'dropped' })).find((f) => f.protocol === 'UDP' && f.srcPort === r.localPort && f.dst === dest && f.dstPort === port);
    if (drop) return probed(`timeout, dropped (${drop.reason})`, 'deny');
  }
  return probed('timeout, no drop seen on this node', 'allow-unconfirmed');
}
