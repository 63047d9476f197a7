// The `sluice` operator commands (status, endpoints, fqdn, observe, version)
// and the command-line dispatch. They reach the agent only through its
// socket API (src/api), never by importing it.
export { CLI_COMMANDS, runCommandLine } from './run.js';
export type { Command } from './run.js';
