// What every `sluice` command shares, the agent included: flag parsing (flag,
// then SLUICE_<FLAG>, then default) and the version. It lives here, not in
// src/cli, so that the CLI and the agent never import each other.
export { envName, formatFlags, parseArgs, parseDurationMs, parseIntFlag, podFlag, UsageError } from './args.js';
export type { FlagSpec, Parsed } from './args.js';
export { VERSION } from './version.js';
export { nodeEnvOf, nodeFlagsOf } from './node-flags.js';
