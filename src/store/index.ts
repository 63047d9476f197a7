export { deepEqual, KINDS, objectKey, ObjectStore, StoreConflictError, StoreKindError, StoreListenerError } from './store.js';
export type { ChangeListener, Kind, KubeObject, ObjectMeta, ObjectSink, StoreChange } from './store.js';
