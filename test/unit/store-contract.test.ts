// The Store contract (store-contract.ts) against every embedded implementation. A Kubernetes-backed
// store passes the same cases: test/k8s/store.test.ts.
import { after } from 'node:test';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FileStore } from '../../src/store/file-store.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { runStoreContract, type ContractImplementation } from './store-contract.ts';

const tempRoot = await fsp.mkdtemp(path.join(os.tmpdir(), 'weft-store-contract-'));
after(() => fsp.rm(tempRoot, { recursive: true, force: true }));
let dirCount = 0;

const implementations: ContractImplementation[] = [
  { name: 'MemoryStore', make: async (opts) => new MemoryStore(opts) },
  { name: 'FileStore', make: async (opts) => FileStore.open(path.join(tempRoot, `s${dirCount++}`), opts) },
];

for (const impl of implementations) runStoreContract(impl);
