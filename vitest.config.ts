import { defineConfig } from 'vitest/config';

// Unit tests live next to the code (src/**/*.test.ts) and need nothing.
// Integration tests (test/**) need root, the built addon and build/bpf/*.o;
// `make test` builds first. Forks, not threads: the addon moves helper threads
// between network namespaces and we want a crash to take down one file only.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    globalSetup: ['test/helpers/global-setup.ts'],
    reporters: ['default'],
  },
});
