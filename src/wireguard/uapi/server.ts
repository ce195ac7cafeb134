// The control socket: `/var/run/wireguard/<ifname>.sock`, where `wg` finds userspace devices.
// Accepts any number of connections, each carrying any number of get/set operations, answers them
// in order from the device, and never lets a bad client take the process or the device down.
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { UapiStreamParser, formatErrno, formatGetReply, formatStats } from './protocol.ts';
import type { UapiOperation, UapiTestHooks } from './protocol.ts';
import { Errno, UapiError } from './types.ts';
import type { UapiDevice } from './types.ts';

export const DEFAULT_SOCKET_DIR = '/var/run/wireguard';

/** How long we wait for an existing socket to answer before treating it as someone else's. */
const PROBE_TIMEOUT_MS = 1000;

export interface UapiServerOptions {
  /** Directory of the socket; `wg` only looks in /var/run/wireguard. */
  dir?: string;
  log?: (msg: string) => void;
}

export class UapiServer {
  readonly path: string;
  readonly #server: net.Server;
  readonly #device: UapiDevice;
  readonly #log: (msg: string) => void;
  /** Identity of the socket file we published, so close() never unlinks a successor's. */
  readonly #ino: bigint;
  readonly #dev: bigint;
  readonly #connections = new Set<net.Socket>();
  #closing: Promise<void> | null = null;

  private constructor(socketPath: string, server: net.Server, device: UapiDevice, log: (msg: string) => void, id: { ino: bigint; dev: bigint }) {
    this.path = socketPath;
    this.#server = server;
    this.#device = device;
    this.#log = log;
    this.#ino = id.ino;
    this.#dev = id.dev;
    server.on('connection', (socket) => this.#accept(socket));
    server.on('error', (err) => this.#log(`uapi ${this.path}: server error: ${err.message}`));
  }

  /**
   * Listen on `<dir>/<ifname>.sock` (mode 0600). Fails if a process already answers there; a
   * stale socket left by a dead one is replaced.
   */
  static async listen(ifname: string, device: UapiDevice, opts: UapiServerOptions = {}): Promise<UapiServer> {
    // Linux interface names are at most IFNAMSIZ-1 = 15 bytes; `wg` refuses names with '/'.
    if (!/^[^/\s]{1,15}$/.test(ifname) || ifname === '.' || ifname === '..') {
      throw new Error(`invalid interface name ${JSON.stringify(ifname)}`);
    }
    const log = opts.log ?? (() => {});
    const dir = path.resolve(opts.dir ?? DEFAULT_SOCKET_DIR);
    const socketPath = path.join(dir, `${ifname}.sock`);
    // sun_path holds 108 bytes including the NUL; a longer name could be linked but not reached.
    if (Buffer.byteLength(socketPath) > 107) throw new Error(`socket path too long: ${socketPath}`);
    const created = await fs.mkdir(dir, { recursive: true, mode: 0o755 });
    if (created !== undefined) {
      // mkdir's mode is filtered by the umask; make what we created world-readable like wg expects.
      for (let d = dir; d.length >= created.length; d = path.dirname(d)) await fs.chmod(d, 0o755);
    }

    // Bind in a private (0700) directory, chmod, then hard-link into place: the socket is never
    // reachable with looser permissions (no process-wide umask games), and link() fails with
    // EEXIST instead of silently replacing another daemon's socket the way rename() would. It
    // also keeps libuv, which unlinks the bound path when the listener closes, away from the
    // public path: close() decides about that one itself.
    const tmpDir = await fs.mkdtemp(path.join(dir, `.${ifname}.`));
    const tmpPath = path.join(tmpDir, 's');
    const server = net.createServer({ allowHalfOpen: true });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(tmpPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
      await fs.chmod(tmpPath, 0o600);
      const st = await fs.stat(tmpPath, { bigint: true });
      await publish(tmpPath, socketPath, log);
      return new UapiServer(socketPath, server, device, log, { ino: st.ino, dev: st.dev });
    } catch (err) {
      server.close();
      throw err;
    } finally {
      await fs.rm(tmpDir, { recursive: true, force: true }).catch(() => {});
    }
  }

  /** Stop listening, drop the connections, and remove the socket file if it is still ours. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Unlink first so nobody connects to a socket that is about to stop answering.
    try {
      const st = await fs.lstat(this.path, { bigint: true });
      if (st.ino === this.#ino && st.dev === this.#dev) await fs.unlink(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#log(`uapi ${this.path}: unlink: ${String(err)}`);
    }
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#connections) socket.destroy();
    await closed;
  }

  #accept(socket: net.Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    this.#connections.add(socket);
    socket.on('close', () => this.#connections.delete(socket));
    // EPIPE / ECONNRESET from clients that hang up mid-reply; 'close' follows.
    socket.on('error', (err) => this.#log(`uapi ${this.path}: connection error: ${err.message}`));

    const parser = new UapiStreamParser();
    const queue: UapiOperation[] = [];
    let ended = false;
    let running = false;

    const enqueue = (ops: UapiOperation[]) => {
      for (const op of ops) queue.push(op);
    };
    // Answers are written strictly in order; while one waits for the client to drain a large
    // reply, reading pauses so a client that sends but never reads cannot make us buffer.
    const run = async () => {
      if (running) return;
      running = true;
      let next = 0;
      try {
        while (next < queue.length && !socket.destroyed) {
          const op = queue[next++]!;
          await this.#answer(socket, op);
          if (op.kind === 'error' && op.close) {
            socket.end();
            return;
          }
        }
        if (ended && !socket.destroyed) socket.end();
      } catch (err) {
        this.#log(`uapi ${this.path}: ${String(err)}`);
        socket.destroy();
      } finally {
        // Drop what was answered (every op is answered at most once, a set applied at most once).
        queue.splice(0, socket.destroyed ? queue.length : next);
        running = false;
        if (!socket.destroyed) socket.resume();
      }
    };
    // The parser is meant never to throw; if it ever does, lose this connection, not the process.
    const guarded = (fn: () => void) => () => {
      try {
        fn();
      } catch (err) {
        this.#log(`uapi ${this.path}: ${String(err)}`);
        socket.destroy();
      }
    };
    socket.on('data', (chunk: Buffer) =>
      guarded(() => {
        enqueue(parser.push(chunk));
        if (queue.length > 0) {
          socket.pause();
          void run();
        }
      })(),
    );
    socket.on(
      'end',
      guarded(() => {
        ended = true;
        enqueue(parser.end());
        void run();
      }),
    );
  }

  async #answer(socket: net.Socket, op: UapiOperation): Promise<void> {
    switch (op.kind) {
      case 'get': {
        let chunks: string[];
        try {
          // Format completely before writing: the reply is one consistent snapshot even if the
          // device changes while we wait for the client to read.
          chunks = [...formatGetReply(this.#device.snapshot())];
        } catch (err) {
          await write(socket, formatErrno(this.#errnoOf(err, 'get')));
          return;
        }
        for (const chunk of chunks) await write(socket, chunk);
        return;
      }
      case 'stats': {
        const stats = this.#device.stats?.();
        await write(socket, stats ? formatStats(stats) : formatErrno(Errno.EINVAL));
        return;
      }
      case 'set': {
        let errno = 0;
        try {
          this.#device.applySet(op.request);
        } catch (err) {
          errno = this.#errnoOf(err, 'set');
        }
        await write(socket, formatErrno(errno));
        return;
      }
      case 'test': {
        // TEST ONLY (protocol.ts): the device decides whether its hooks are enabled.
        const hooks = (this.#device as Partial<UapiTestHooks>).applyTest;
        let errno = 0;
        try {
          if (!hooks) throw new UapiError(Errno.EINVAL, 'this device has no test hooks');
          hooks.call(this.#device, op.request);
        } catch (err) {
          errno = this.#errnoOf(err, 'test');
        }
        await write(socket, formatErrno(errno));
        return;
      }
      case 'error':
        this.#log(`uapi ${this.path}: ${op.message} (errno -${op.errno})`);
        await write(socket, formatErrno(op.errno));
        return;
    }
  }

  /** A UapiError keeps its errno; anything else the device throws is reported as -EIO. */
  #errnoOf(err: unknown, what: string): number {
    const msg = err instanceof Error ? err.message : String(err);
    if (err instanceof UapiError && Number.isInteger(err.errno) && err.errno !== 0) {
      this.#log(`uapi ${this.path}: ${what} failed: ${msg} (errno -${Math.abs(err.errno)})`);
      return Math.abs(err.errno);
    }
    this.#log(`uapi ${this.path}: ${what} failed unexpectedly: ${msg}`);
    return Errno.EIO;
  }
}

/** Write and, when the socket's buffer is full, wait until it drains (or the socket goes away). */
function write(socket: net.Socket, data: string): Promise<void> {
  if (socket.destroyed || !socket.writable) return Promise.resolve();
  if (socket.write(data, 'latin1')) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/** Link the bound socket to its public name, replacing only a stale socket (nobody answers). */
async function publish(tmpPath: string, socketPath: string, log: (msg: string) => void): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await fs.link(tmpPath, socketPath);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const before = await lstatOrNull(socketPath);
    if (!before) continue; // vanished meanwhile: try again
    if (!before.isSocket()) throw new Error(`${socketPath} exists and is not a socket`);
    const state = await probe(socketPath);
    if (state === 'live') throw new Error(`${socketPath} is in use by another process`);
    if (state === 'stale') {
      // Only remove the very file we found refusing connections.
      const now = await lstatOrNull(socketPath);
      if (now && now.ino === before.ino && now.dev === before.dev) {
        log(`uapi: replacing stale socket ${socketPath}`);
        await fs.unlink(socketPath).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'ENOENT') throw e;
        });
      }
    }
  }
  throw new Error(`${socketPath}: could not claim the socket path`);
}

async function lstatOrNull(p: string) {
  try {
    return await fs.lstat(p, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * `stale` only when connect() is refused (the listener is gone, as `wg` and wireguard-go judge
 * it); a connection, a timeout or any other error means someone may still own it.
 */
function probe(socketPath: string): Promise<'live' | 'stale' | 'gone'> {
  return new Promise((resolve) => {
    const conn = net.connect(socketPath);
    const finish = (state: 'live' | 'stale' | 'gone') => {
      clearTimeout(timer);
      conn.destroy();
      resolve(state);
    };
    const timer = setTimeout(() => finish('live'), PROBE_TIMEOUT_MS);
    conn.once('connect', () => finish('live'));
    conn.once('error', (err: NodeJS.ErrnoException) => {
      finish(err.code === 'ECONNREFUSED' ? 'stale' : err.code === 'ENOENT' ? 'gone' : 'live');
    });
  });
}
