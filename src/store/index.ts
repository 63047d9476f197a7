export { KINDS, objectKey, ObjectStore, StoreListenerError } from './store.js';
export type { ChangeListener, Kind, KubeObject, ObjectMeta } from './store.js';
