// wg-quick with WG_QUICK_USERSPACE_IMPLEMENTATION=<implementation> (the kernel here has no WireGuard
// module, so wg-quick falls back to the userspace command and relies on its daemonizing contract),
// plus the command-line contract itself: daemonize-and-return-when-ready, foreground by -f or
// WG_PROCESS_FOREGROUND=1, exit and remove the socket on SIGTERM/SIGINT or when the TUN goes away.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { NetLab, waitFor } from './harness.ts';
import { exitedWithin, implExecutable, implsUnderTest, namespacePids, pairLabel, pairMatrix, pidAlive, socketPath, startDevice, type ImplPair, type WgImpl } from './impl.ts';
import { formatEndpoint, genKeyPair, pairAddresses, parseDump, parsePing } from './wgpair.ts';

interface QuickSide {
  label: 'A' | 'B';
  ns: string;
  ifname: string;
  impl: WgImpl;
  conf: string;
  keys: { privateKey: string; publicKey: string };
  addr: (typeof pairAddresses)['A'] | (typeof pairAddresses)['B'];
  /** Processes that appeared in the namespace with `wg-quick up` (the daemonized device). */
  devicePids: number[];
}

function quickSuite(p: ImplPair): void {
  describe(`wg-quick up/down: ${pairLabel(p)}`, () => {
    const lab = NetLab.create();
    let A: QuickSide;
    let B: QuickSide;
    let up = false;

    before(async () => {
      const nsA = await lab.namespace('qa');
      const nsB = await lab.namespace('qb');
      await lab.veth(nsA, nsB, {
        a: [`${pairAddresses.A.underlay.v4}/24`, `${pairAddresses.A.underlay.v6}/64`],
        b: [`${pairAddresses.B.underlay.v4}/24`, `${pairAddresses.B.underlay.v6}/64`],
      });
      const dir = lab.tempDir('quick');
      const mk = async (label: 'A' | 'B', ns: string, impl: WgImpl): Promise<QuickSide> => {
        const ifname = lab.ifname('wq');
        return { label, ns, ifname, impl, conf: path.join(dir, `${ifname}.conf`), keys: await genKeyPair(), addr: pairAddresses[label], devicePids: [] };
      };
      A = await mk('A', nsA, p.initiator);
      B = await mk('B', nsB, p.responder);
      for (const [s, o] of [[A, B], [B, A]] as const) {
        const lines = [
          '[Interface]',
          `PrivateKey = ${s.keys.privateKey}`,
          `ListenPort = ${s.addr.port}`,
          `Address = ${s.addr.tunnel.v4}/24, ${s.addr.tunnel.v6}/64`,
          '',
          '[Peer]',
          `PublicKey = ${o.keys.publicKey}`,
          ...(s === A ? [`Endpoint = ${formatEndpoint(o.addr.underlay.v4, o.addr.port)}`] : []),
          `AllowedIPs = ${o.addr.tunnel.v4}/32, ${o.addr.tunnel.v6}/128`,
          '',
        ];
        fs.writeFileSync(s.conf, lines.join('\n'), { mode: 0o600 });
      }
    });
    after(() => lab.cleanup());

    test('wg-quick up in both namespaces', async () => {
      for (const s of [A, B]) {
        const exe = await implExecutable(s.impl);
        const existing = new Set(await namespacePids(s.ns));
        const r = await lab.exec(s.ns, ['env', `WG_QUICK_USERSPACE_IMPLEMENTATION=${exe}`, 'wg-quick', 'up', s.conf], { allowFail: true, timeoutMs: 30_000 });
        assert.equal(r.code, 0, `wg-quick up (${s.impl.name}) failed: ${r.stderr}`);
        assert.match(r.stderr, /userspace implementation/, 'wg-quick used the userspace fallback');
        s.devicePids = (await namespacePids(s.ns)).filter((pid) => !existing.has(pid));
        assert.ok(s.devicePids.length >= 1, 'a device process keeps running in the namespace');
        assert.ok(fs.existsSync(socketPath(s.ifname)), 'control socket exists');
        const link = await lab.exec(s.ns, ['ip', '-o', 'link', 'show', s.ifname]);
        assert.match(link.stdout, /[<,]UP[,>]/, 'interface is up');
        const addrs = await lab.exec(s.ns, ['ip', '-o', 'addr', 'show', 'dev', s.ifname]);
        assert.match(addrs.stdout, new RegExp(`${s.addr.tunnel.v4.replace(/\./g, '\\.')}/24`));
        const dump = parseDump((await lab.exec(s.ns, ['wg', 'show', s.ifname, 'dump'])).stdout);
        assert.equal(dump.privateKey, s.keys.privateKey);
        assert.equal(dump.listenPort, s.addr.port);
        assert.equal(dump.peers.length, 1);
      }
      up = true;
    });

    test('ping through the tunnel (v4 and v6, both directions)', async () => {
      assert.ok(up, 'wg-quick up failed (see above)');
      for (const [s, o] of [[A, B], [B, A]] as const) {
        for (const fam of ['v4', 'v6'] as const) {
          await waitFor(`ping ${s.label}→${o.addr.tunnel[fam]}`, async () => {
            const r = parsePing((await lab.exec(s.ns, ['ping', '-n', '-c', '1', '-W', '1', o.addr.tunnel[fam]], { allowFail: true })).stdout);
            return r.received > 0;
          }, 15_000, 100);
        }
      }
      for (const s of [A, B]) {
        const dump = parseDump((await lab.exec(s.ns, ['wg', 'show', s.ifname, 'dump'])).stdout);
        assert.ok(dump.peers[0]!.latestHandshake > 0, `${s.label}: handshake recorded`);
        assert.ok(dump.peers[0]!.rxBytes > 0 && dump.peers[0]!.txBytes > 0, `${s.label}: bytes counted`);
      }
    });

    test('wg-quick down removes the interface; the device exits and its socket disappears', async () => {
      assert.ok(up, 'wg-quick up failed (see above)');
      for (const s of [A, B]) {
        const r = await lab.exec(s.ns, ['wg-quick', 'down', s.conf], { allowFail: true, timeoutMs: 30_000 });
        assert.equal(r.code, 0, `wg-quick down failed: ${r.stderr}`);
        const link = await lab.exec(s.ns, ['ip', 'link', 'show', s.ifname], { allowFail: true });
        assert.notEqual(link.code, 0, 'interface is gone');
        await waitFor(`${s.impl.name} process exit after wg-quick down`, () => s.devicePids.every((pid) => !pidAlive(pid)), 10_000);
        await waitFor(`${s.ifname}.sock removed`, () => !fs.existsSync(socketPath(s.ifname)), 5_000);
      }
    });
  });
}

function cliSuite(impl: WgImpl): void {
  describe(`command-line contract: ${impl.name}`, () => {
    const lab = NetLab.create();
    let ns: string;
    before(async () => {
      ns = await lab.namespace('cli');
    });
    after(() => lab.cleanup());

    test('without -f it daemonizes, returns once ready, and exits when the TUN is deleted', async () => {
      const exe = await implExecutable(impl);
      const ifname = lab.ifname('wc');
      const existing = new Set(await namespacePids(ns));
      // run() waits for stdout/stderr to close too: a daemon that keeps the caller's pipes open
      // would hang here (and hang `$(wg-quick ...)` in scripts).
      const t0 = Date.now();
      const r = await lab.exec(ns, [exe, ifname], { allowFail: true, timeoutMs: 20_000 });
      assert.equal(r.code, 0, `exit code ${r.code}: ${r.stderr}`);
      assert.ok(Date.now() - t0 < 19_000, 'returned (and released its output pipes) promptly');
      // Ready on return: socket answers and the TUN exists, without waiting.
      assert.ok(fs.existsSync(socketPath(ifname)), 'socket exists when the command returns');
      await lab.exec(ns, ['wg', 'show', ifname]);
      await lab.exec(ns, ['ip', 'link', 'show', ifname]);
      const pids = (await namespacePids(ns)).filter((p) => !existing.has(p));
      assert.ok(pids.length >= 1, 'daemon process running');
      await lab.exec(ns, ['ip', 'link', 'del', ifname]);
      await waitFor('daemon exit after TUN deletion', () => pids.every((p) => !pidAlive(p)), 10_000);
      await waitFor('socket removed after TUN deletion', () => !fs.existsSync(socketPath(ifname)), 5_000);
    });

    for (const [how, signal] of [['flag', 'SIGTERM'], ['env', 'SIGINT']] as const) {
      test(`foreground by ${how === 'flag' ? '-f' : 'WG_PROCESS_FOREGROUND=1'}: ${signal} exits and removes the socket and TUN`, async () => {
        const ifname = lab.ifname('wc');
        const dev = await startDevice(lab, ns, impl, ifname, { foreground: how });
        assert.ok(dev.running(), 'stays in the foreground');
        const exit = await dev.stop(signal, 10_000);
        assert.ok(exit, `${impl.name} exited after ${signal}`);
        await waitFor('socket removed', () => !fs.existsSync(socketPath(ifname)), 5_000);
        await waitFor('TUN removed', async () => (await lab.exec(ns, ['ip', 'link', 'show', ifname], { allowFail: true })).code !== 0, 5_000);
      });
    }

    test('foreground: deleting the TUN makes the process exit and remove its socket', async () => {
      const ifname = lab.ifname('wc');
      const dev = await startDevice(lab, ns, impl, ifname);
      await lab.exec(ns, ['ip', 'link', 'del', ifname]);
      const exit = await exitedWithin(dev.exited, 10_000);
      assert.ok(exit, `${impl.name} exited after its TUN was deleted`);
      await waitFor('socket removed', () => !fs.existsSync(socketPath(ifname)), 5_000);
    });
  });
}

for (const p of pairMatrix()) quickSuite(p);
for (const impl of implsUnderTest()) cliSuite(impl);
