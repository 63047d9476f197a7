// Replaced at bundle time (esbuild --define) with package.json's version.
declare const SLUICE_VERSION: string | undefined;
export const VERSION: string = typeof SLUICE_VERSION === 'string' ? SLUICE_VERSION : '0.0.0-dev';
