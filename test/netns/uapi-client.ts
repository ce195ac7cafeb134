// A raw control-socket client for tests: what `wg` does, plus weft's own operations (`stats=1`,
// the test-only `test=1`), with a bounded wait so a silent device fails the test instead of hanging.
import assert from 'node:assert/strict';
import net from 'node:net';

/** Send `request` on one connection; resolves with the text of `answers` replies. */
export function uapi(socket: string, request: string, answers = 1): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socket);
    let out = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no reply from ${socket} to ${JSON.stringify(request)}: ${JSON.stringify(out)}`));
    }, 5000);
    c.on('data', (d) => {
      out += d.toString();
      if (out.endsWith('\n\n') && (out.match(/^errno=/gm) ?? []).length >= answers) {
        clearTimeout(timer);
        c.end();
        resolve(out);
      }
    });
    c.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    c.write(request);
  });
}

export function errnoOf(reply: string): number {
  const m = /^errno=(-?\d+)$/m.exec(reply);
  assert.ok(m, `reply without errno: ${JSON.stringify(reply)}`);
  return Number(m[1]);
}

/** weft-wg's counters (`stats=1`): packet-path drops and traffic, handshake outcomes. */
export async function readStats(socket: string): Promise<Record<string, bigint>> {
  const reply = await uapi(socket, 'stats=1\n\n');
  const out: Record<string, bigint> = {};
  for (const line of reply.trim().split('\n')) {
    const [k, v] = line.split('=');
    if (k && v !== undefined) out[k] = BigInt(v);
  }
  assert.equal(out.errno, 0n, `stats reply: ${reply}`);
  return out;
}
