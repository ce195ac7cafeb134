// Makes the in-process fake Kubernetes API server (listening on the test's own loopback) reachable
// from processes inside test namespaces, without linking any namespace to the root one: a Unix
// socket (a file, shared by all namespaces) relays between a forwarder on the namespace's loopback
// (same port, so the same kubeconfig works everywhere) and the real listener.
import net from 'node:net';
import path from 'node:path';
import { nodeBin, type NetLab } from './harness.ts';

export interface ApiBridge {
  /** Start a forwarder in `ns` (once per namespace). */
  into(ns: string): Promise<void>;
  close(): Promise<void>;
}

export async function bridgeApi(lab: NetLab, apiUrl: string): Promise<ApiBridge> {
  const { port } = new URL(apiUrl);
  const sock = path.join(lab.tempDir('api'), 'api.sock');
  const relay = net.createServer((c) => {
    const up = net.connect(Number(port), '127.0.0.1');
    c.pipe(up).pipe(c);
    const end = () => {
      c.destroy();
      up.destroy();
    };
    c.on('error', end);
    up.on('error', end);
  });
  await new Promise<void>((r) => relay.listen(sock, r));
  const forwarder = `const net=require('net');net.createServer((c)=>{const u=net.connect(${JSON.stringify(sock)});c.pipe(u).pipe(c);const e=()=>{c.destroy();u.destroy()};c.on('error',e);u.on('error',e)}).listen(${port},'127.0.0.1',()=>console.log('ready'))`;
  return {
    async into(ns) {
      const child = lab.spawn(ns, [nodeBin, '-e', forwarder]);
      await new Promise((r) => child.stdout!.once('data', r));
    },
    close: () => new Promise((r) => relay.close(() => r())),
  };
}
