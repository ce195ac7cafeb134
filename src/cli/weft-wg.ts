// weft-wg IFNAME: a drop-in for wireguard-go. Creates the TUN device and the control socket
// /var/run/wireguard/IFNAME.sock, then serves `wg` until SIGTERM/SIGINT or until the TUN device is
// deleted. Without -f it detaches and returns once the device and the socket are ready, so
// `wg-quick` (through WG_QUICK_USERSPACE_IMPLEMENTATION) can configure it right after.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { Device } from '../wireguard/device.ts';
import { UapiServer } from '../wireguard/uapi/server.ts';
import { createLogger, parseLogLevel } from '../log.ts';

const VERSION = '0.1.0';
const READY_FD_ENV = 'WEFT_WG_READY_FD';

function usage(code: number): never {
  (code === 0 ? process.stdout : process.stderr).write(`Usage: weft-wg [-f/--foreground] INTERFACE-NAME\n`);
  process.exit(code);
}

function parseArgs(argv: string[]): { foreground: boolean; ifname: string } {
  let foreground = process.env.WG_PROCESS_FOREGROUND === '1';
  const rest: string[] = [];
  for (const a of argv) {
    if (a === '-f' || a === '--foreground') foreground = true;
    else if (a === '-h' || a === '--help') usage(0);
    else if (a === '--version') {
      process.stdout.write(`weft-wg v${VERSION}\n\nUserspace WireGuard daemon for Linux, part of weft.\n`);
      process.exit(0);
    } else rest.push(a);
  }
  if (rest.length !== 1) usage(2);
  const ifname = rest[0]!;
  if (!/^[A-Za-z0-9_.=+-]{1,15}$/.test(ifname) || ifname === '.' || ifname === '..') {
    process.stderr.write(`weft-wg: invalid interface name '${ifname}'\n`);
    process.exit(2);
  }
  return { foreground, ifname };
}

/** Re-run ourselves detached in the foreground mode and wait until the child says it is ready. */
function daemonize(ifname: string, logLevel: string | undefined): void {
  const keepOutput = logLevel !== undefined && parseLogLevel(logLevel) !== 'silent';
  // Without a log level the child must not hold our stdout/stderr: a caller reading our output
  // (wg-quick, a test) would otherwise wait for the daemon to exit.
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ifname], {
    detached: true,
    stdio: ['ignore', keepOutput ? 'inherit' : 'ignore', keepOutput ? 'inherit' : 'ignore', 'pipe'],
    env: { ...process.env, WG_PROCESS_FOREGROUND: '1', [READY_FD_ENV]: '3' },
  });
  const pipe = child.stdio[3] as NodeJS.ReadableStream;
  let said = '';
  pipe.on('data', (d: Buffer) => (said += d.toString()));
  const timer = setTimeout(() => {
    process.stderr.write(`weft-wg: ${ifname} did not become ready in time\n`);
    child.kill('SIGTERM');
    process.exit(1);
  }, 15_000);
  const finish = () => {
    clearTimeout(timer);
    if (said.startsWith('ready')) {
      child.unref();
      process.exit(0);
    }
    process.stderr.write(said.replace(/^error: /, 'weft-wg: ') || `weft-wg: ${ifname} exited during start-up\n`);
    process.exit(1);
  };
  pipe.on('end', finish);
  child.on('error', (err) => {
    process.stderr.write(`weft-wg: ${err.message}\n`);
    process.exit(1);
  });
}

async function serve(ifname: string): Promise<void> {
  const log = createLogger(parseLogLevel(process.env.LOG_LEVEL), `(${ifname}) `);
  const readyFd = process.env[READY_FD_ENV] ? Number(process.env[READY_FD_ENV]) : null;
  delete process.env[READY_FD_ENV];
  const tell = (msg: string) => {
    if (readyFd === null) return;
    try {
      fs.writeSync(readyFd, msg);
      fs.closeSync(readyFd);
    } catch {}
  };

  let device: Device;
  let server: UapiServer;
  try {
    // TEST ONLY switch: lets the key-lifetime tests age keypairs through the control socket.
    const testHooks = process.env.WEFT_WG_TEST_HOOKS === '1';
    // WEFT_WG_OFFLOADS=0 turns the segmentation offloads off (to measure what they bring);
    // WEFT_WG_CRYPTO_THREADS=N sets the AEAD threads per direction (default: by core count).
    const cryptoThreads = process.env.WEFT_WG_CRYPTO_THREADS;
    device = new Device(ifname, {
      log,
      testHooks,
      offloads: process.env.WEFT_WG_OFFLOADS !== '0',
      ...(cryptoThreads !== undefined && cryptoThreads !== '' ? { cryptoThreads: Number(cryptoThreads) } : {}),
    });
    if (testHooks) log.error('WEFT_WG_TEST_HOOKS=1: test hooks enabled, not for production use');
  } catch (err) {
    const msg = `Failed to create TUN device ${ifname}: ${(err as Error).message}`;
    log.error(msg);
    tell(`error: ${msg}\n`);
    if (readyFd === null) process.stderr.write(`weft-wg: ${msg}\n`);
    process.exit(1);
  }
  try {
    server = await UapiServer.listen(ifname, device, { log: (m) => log.verbose(m) });
  } catch (err) {
    const msg = `Failed to open control socket for ${ifname}: ${(err as Error).message}`;
    log.error(msg);
    tell(`error: ${msg}\n`);
    if (readyFd === null) process.stderr.write(`weft-wg: ${msg}\n`);
    device.close();
    process.exit(1);
  }

  let stopping = false;
  const stop = async (why: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    log.verbose(`Shutting down: ${why}`);
    await server.close().catch(() => {});
    device.close();
    process.exit(code);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => {});
  device.onGone((reason) => void stop(`device gone (${reason})`));
  process.on('uncaughtException', (err) => {
    log.error(`internal error: ${err.stack ?? err.message}`);
    void stop('internal error', 1);
  });
  log.verbose('Device started');
  tell('ready\n');
}

const { foreground, ifname } = parseArgs(process.argv.slice(2));
if (foreground) await serve(ifname);
else daemonize(ifname, process.env.LOG_LEVEL);
