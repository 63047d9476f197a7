export { Agent, AgentError } from './agent.js';
export type { AgentConfig } from './agent.js';
export { AGENT_FLAGS } from './flags.js';
export { runAgent } from './main.js';
