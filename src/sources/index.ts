export { Deferred } from './source.js';
export type { PolicySink, PolicySource } from './source.js';
export { FlagPodCidrs, FlagResolvers, ResolvConfResolvers, ResolverAddressError, trustedResolversFromFlag } from './providers.js';
export type { PodCidrProvider, TrustedResolverProvider } from './providers.js';
