export { parseManifest, StandaloneSource } from './source.js';
export type { FileStatus } from './source.js';
export { validateLabels, validateObject, ValidationError } from './validate.js';
