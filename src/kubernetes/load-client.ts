// Loads src/kubernetes/client.ts (the only module over @kubernetes/client-node,
// ~1.7 MB of bundled code) only when Kubernetes mode needs it. Bundled, it is
// a file of its own next to the CLI (build/bin/sluice-kube-client.cjs, see the
// Makefile), so the CLI and standalone mode never parse it; from source (tests)
// it is a plain dynamic import.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type KubeClientModule = typeof import('./client.js');

/** The side bundle's file name, next to build/bin/sluice. */
export const CLIENT_BUNDLE = 'sluice-kube-client.cjs';

export async function loadKubeClient(): Promise<KubeClientModule> {
  const here = dirname(fileURLToPath(import.meta.url));
  const bundled = join(here, CLIENT_BUNDLE);
  if (existsSync(bundled)) return createRequire(import.meta.url)(bundled) as KubeClientModule;
  // A specifier esbuild does not follow: the bundle must not inline the client.
  const source = './client.js';
  return (await import(source)) as KubeClientModule;
}
