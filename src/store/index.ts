// The resource store: one interface, an in-memory and a file-backed implementation.
export { StoreError, isStoreError, DEFAULT_HISTORY_LIMIT } from './types.ts';
export type {
  ApplyInput,
  KindOptions,
  KindRegistry,
  ListOptions,
  ObjectMeta,
  Resource,
  Store,
  StoreErrorCode,
  StoreOptions,
  Watch,
  WatchEvent,
  WatchEventType,
  WatchOptions,
} from './types.ts';
export { MemoryStore } from './memory.ts';
export type { MemoryStoreOptions } from './memory.ts';
export { FileStore } from './file-store.ts';
export type { FileStoreOptions } from './file-store.ts';
