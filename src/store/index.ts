export { KINDS, objectKey, ObjectStore } from './store.js';
export type { ChangeListener, Kind, KubeObject, ObjectMeta } from './store.js';
