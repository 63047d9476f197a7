// `sluice explain` and `sluice test`: the verdict of a flow and the policies
// and rules behind it, worked out over the compiler's output exactly as the
// datapath judges (evaluate.ts), against a world of manifests (offline, no
// agent, no root) or the agent's own compile input (live). Pure: the CLI and
// the agent both import it; the live probes are the CLI's.
export { parseAssertions } from './assertions.js';
export type { Assertion } from './assertions.js';
export { ExplainCode, ExplainError } from './errors.js';
export { explain, refText } from './evaluate.js';
export { explanationJson, explanationTable, passed, resultJson, resultsTable } from './format.js';
export type { AssertionResult, ProbeReport } from './format.js';
export { loadWorld } from './load.js';
export { parsePort, parseSubject } from './query.js';
export type { AuditNote, ExplainPath, ExplainQuery, ExplainStep, Explanation, Verdict } from './types.js';
export { policyWorldSteps } from './world.js';
export type { Learned, World } from './world.js';
