// A self-contained SVG chart of the newest benchmark results, for the README and GitHub:
//
//   node bench/plot.ts [--out bench/results/wg-throughput.svg] [--results bench/results]
//                      [--throughput FILE] [--handshake FILE] [--no-handshake]
//
// Reads the newest bench/results/wg-throughput-*.json (or --throughput) and, when there is one,
// the newest handshake-rate-*.json (or --handshake). Draws, hand-written SVG without dependencies
// (white background, sans-serif text, every bar labelled with its value):
//   - TCP throughput in Gbit/s, one group of bars per subject (raw veth, weft-wg, wireguard-go):
//     1 stream A→B, 1 stream B→A, N parallel streams A→B;
//   - ping RTT through the tunnel (median and p90; all tunnels pinged at once when measured so);
//   - device CPU seconds per gigabit carried (both devices), per transfer;
//   - from the handshake benchmark, when present: completed handshakes/s against one responder,
//     and ping RTT idle vs. under a handshake flood.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = 'usage: node bench/plot.ts [--out bench/results/wg-throughput.svg] [--results DIR] [--throughput FILE] [--handshake FILE] [--no-handshake]';

const { values: opt } = parseArgs({
  options: {
    out: { type: 'string', default: path.join(repoRoot, 'bench/results/wg-throughput.svg') },
    results: { type: 'string', default: path.join(repoRoot, 'bench/results') },
    throughput: { type: 'string' },
    handshake: { type: 'string' },
    'no-handshake': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log(USAGE);
  process.exit(0);
}

// ---- input ------------------------------------------------------------------------------------

type Cell<T> = T | { error: string } | undefined;
interface Throughput {
  gbps: number;
  retransmits: number;
  deviceCpuSeconds?: number;
  gigabits?: number;
  cpuSecondsPerGbit?: number;
}
interface Ping {
  medianMs: number;
  p90Ms: number;
  sent?: number;
  received?: number;
}
interface Machine {
  nproc?: number;
  cpuModel?: string;
  kernel?: string;
}
interface ThroughputFile {
  date: string;
  machine?: Machine;
  settings?: { seconds?: number; parallel?: number; pings?: number };
  results: { subject: string; error?: string; tcp1Forward?: Cell<Throughput>; tcp1Reverse?: Cell<Throughput>; tcpParallel?: Cell<Throughput>; ping?: Cell<Ping>; pingSideBySide?: Cell<Ping> }[];
}
interface HandshakeFile {
  date: string;
  machine?: Machine;
  settings?: { seconds?: number; peers?: number; sources?: number; inflight?: number; generators?: number; floodRate?: number; pings?: number };
  results: {
    subject: string;
    error?: string;
    handshakes?: Cell<{ handshakesPerSecond: number; seconds: number; responderCpuMsPerHandshake: number; generatorCpuSeconds: number; generatorEventLoopUtilization?: number; rounds?: { generatorEventLoopUtilization: number }[]; cookieRepliesPerSecond: number }>;
    pingIdle?: Cell<Ping & { lossPct?: number }>;
    pingFlood?: Cell<Ping & { lossPct?: number }>;
  }[];
}

function newest(dir: string, prefix: string): string | null {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return null;
  }
  // The names carry an ISO date, so the lexical order is the chronological one.
  const hits = names.filter((n) => n.startsWith(prefix) && n.endsWith('.json')).sort();
  return hits.length ? path.join(dir, hits[hits.length - 1]!) : null;
}

const throughputPath = opt.throughput ?? newest(String(opt.results), 'wg-throughput-');
if (!throughputPath) {
  console.error(`no wg-throughput-*.json in ${opt.results} (run bench/wg-throughput.ts first)\n${USAGE}`);
  process.exit(1);
}
const tput = JSON.parse(fs.readFileSync(throughputPath, 'utf8')) as ThroughputFile;
const handshakePath = opt['no-handshake'] ? null : (opt.handshake ?? newest(String(opt.results), 'handshake-rate-'));
const hs = handshakePath ? (JSON.parse(fs.readFileSync(handshakePath, 'utf8')) as HandshakeFile) : null;

function ok<T>(c: Cell<T>): T | null {
  return c !== undefined && c !== null && !(typeof c === 'object' && 'error' in (c as object)) ? (c as T) : null;
}

// ---- SVG primitives -----------------------------------------------------------------------------

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const r1 = (x: number) => Math.round(x * 10) / 10;

function text(x: number, y: number, s: string, o: { size?: number; anchor?: 'start' | 'middle' | 'end'; weight?: 'bold' | 'normal'; fill?: string; rotate?: number } = {}): string {
  const rot = o.rotate ? ` transform="rotate(${o.rotate} ${r1(x)} ${r1(y)})"` : '';
  return `<text x="${r1(x)}" y="${r1(y)}" font-size="${o.size ?? 12}" text-anchor="${o.anchor ?? 'start'}"${o.weight === 'bold' ? ' font-weight="bold"' : ''} fill="${o.fill ?? '#222'}"${rot}>${esc(s)}</text>`;
}

function rect(x: number, y: number, w: number, h: number, fill: string, extra = ''): string {
  return `<rect x="${r1(x)}" y="${r1(y)}" width="${r1(Math.max(0, w))}" height="${r1(Math.max(0, h))}" fill="${fill}"${extra}/>`;
}

function line(x1: number, y1: number, x2: number, y2: number, stroke: string, width = 1): string {
  return `<line x1="${r1(x1)}" y1="${r1(y1)}" x2="${r1(x2)}" y2="${r1(y2)}" stroke="${stroke}" stroke-width="${width}"/>`;
}

/** Split `s` at spaces into lines of at most `width` characters. */
function wrap(s: string, width: number): string[] {
  const lines: string[] = [];
  let cur = '';
  for (const word of s.split(' ')) {
    if (cur && cur.length + 1 + word.length > width) {
      lines.push(cur);
      cur = word;
    } else cur = cur ? `${cur} ${word}` : word;
  }
  if (cur) lines.push(cur);
  return lines;
}

/** A round axis maximum and step covering `max` with about four gridlines. */
function niceScale(max: number): { top: number; step: number } {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  return { top: Math.ceil((max * 1.08) / step) * step, step };
}

function fmt(v: number): string {
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  if (v >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

interface Series {
  name: string;
  color: string;
}
interface Group {
  label: string;
  /** One per series: a number (a bar), or a string (shown instead of a bar, e.g. "error"). */
  values: (number | string | null)[];
  /** Text written on the bar's value label instead of the formatted number. */
  valueLabels?: (string | undefined)[];
  /** A second, smaller line under the group label. */
  note?: string;
}

/** A vertical grouped bar chart in the box (x, y, w, h), with its title, axis and legend. */
function barPanel(x: number, y: number, w: number, h: number, o: { title: string; subtitle?: string; unit: string; series: Series[]; groups: Group[]; legend?: boolean }): string {
  const out: string[] = [];
  out.push(text(x, y + 16, o.title, { size: 15, weight: 'bold' }));
  const sub = o.subtitle ? wrap(o.subtitle, Math.floor(w / 6.1)) : [];
  sub.forEach((l, i) => out.push(text(x, y + 33 + i * 14, l, { size: 11, fill: '#555' })));
  const legendH = o.legend === false ? 0 : 18;
  const top = y + 30 + sub.length * 14 + legendH;
  const hasNote = o.groups.some((g) => g.note);
  const bottom = y + h - (hasNote ? 36 : 22);
  const left = x + 48;
  const right = x + w - 6;
  if (o.legend !== false) {
    let lx = left;
    for (const s of o.series) {
      out.push(rect(lx, top - legendH + 1, 11, 11, s.color));
      out.push(text(lx + 15, top - legendH + 11, s.name, { size: 11 }));
      lx += 15 + s.name.length * 6.2 + 16;
    }
  }
  const numbers = o.groups.flatMap((g) => g.values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)));
  const { top: vmax, step } = niceScale(Math.max(0, ...numbers));
  const tickDecimals = (String(Number(step.toPrecision(6))).split('.')[1] ?? '').length;
  const yOf = (v: number) => bottom - ((bottom - top - 14) * v) / vmax;
  for (let v = 0; v <= vmax + step / 1e6; v += step) {
    out.push(line(left, yOf(v), right, yOf(v), v === 0 ? '#888' : '#e3e3e3'));
    out.push(text(left - 5, yOf(v) + 4, v.toFixed(tickDecimals), { size: 10, anchor: 'end', fill: '#555' }));
  }
  out.push(text(x + 11, (top + bottom) / 2, o.unit, { size: 11, anchor: 'middle', fill: '#555', rotate: -90 }));
  const gw = (right - left) / Math.max(1, o.groups.length);
  const bw = Math.min(56, (gw * 0.78) / Math.max(1, o.series.length));
  o.groups.forEach((g, gi) => {
    const gx = left + gi * gw + (gw - bw * o.series.length) / 2;
    out.push(text(left + gi * gw + gw / 2, bottom + 15, g.label, { size: 12, anchor: 'middle', weight: 'bold' }));
    if (g.note) out.push(text(left + gi * gw + gw / 2, bottom + 29, g.note, { size: 10, anchor: 'middle', fill: '#555' }));
    const texts = g.values.filter((v) => typeof v === 'string');
    if (texts.length === g.values.length && new Set(texts).size === 1) {
      // The whole group failed the same way: one label for it.
      out.push(text(left + gi * gw + gw / 2, bottom - 6, String(texts[0]), { size: 11, anchor: 'middle', fill: '#b00020' }));
      return;
    }
    g.values.forEach((v, si) => {
      const bx = gx + si * bw;
      const cx = bx + bw / 2;
      if (typeof v === 'number' && Number.isFinite(v)) {
        out.push(rect(bx + 1, yOf(v), bw - 2, bottom - yOf(v), o.series[si]!.color));
        out.push(text(cx, yOf(v) - 4, g.valueLabels?.[si] ?? fmt(v), { size: bw < 34 ? 9.5 : 11, anchor: 'middle' }));
      } else if (typeof v === 'string') {
        out.push(text(cx, bottom - 6, v, { size: 10, anchor: 'middle', fill: '#b00020', rotate: bw < 30 ? -90 : 0 }));
      }
    });
  });
  return out.join('\n');
}

// ---- the chart ----------------------------------------------------------------------------------

const parallel = tput.settings?.parallel ?? 4;
const seconds = tput.settings?.seconds ?? 10;
const tests: { key: 'tcp1Forward' | 'tcp1Reverse' | 'tcpParallel'; name: string; color: string }[] = [
  { key: 'tcp1Forward', name: 'TCP 1 stream A→B', color: '#4C78A8' },
  { key: 'tcp1Reverse', name: 'TCP 1 stream B→A', color: '#72B7B2' },
  { key: 'tcpParallel', name: `TCP ${parallel} streams A→B`, color: '#F58518' },
];
const failed = (r: { error?: string }) => (r.error ? 'FAILED' : 'error');
const cpuPerGbit = (t: Throughput): number | null =>
  t.cpuSecondsPerGbit ?? (t.deviceCpuSeconds !== undefined && t.gbps > 0 ? t.deviceCpuSeconds / (t.gbps * seconds) : null);

function machineLine(m: Machine | undefined): string {
  if (!m) return 'machine unknown';
  return `${m.nproc ?? '?'} vCPU · ${m.cpuModel ?? 'CPU unknown'} · kernel ${m.kernel ?? '?'}`;
}
const day = (iso: string) => iso.replace('T', ' ').replace(/:\d\d\.\d+Z$/, ' UTC');

const W = 1000;
const parts: string[] = [];
const footnotes: string[] = [];
let y = 0;
parts.push(text(20, 30, `WireGuard userspace devices: throughput, latency, CPU${hs ? ', handshakes' : ''}`, { size: 20, weight: 'bold' }));
parts.push(text(20, 52, `wg-throughput ${day(tput.date)} · ${machineLine(tput.machine)} · iperf3 ${seconds} s per transfer, tunnel MTU 1420`, { size: 12, fill: '#444' }));
y = 66;

// Throughput, grouped per subject.
parts.push(
  barPanel(20, y, W - 40, 330, {
    title: 'TCP throughput (iperf3, receiver side)',
    subtitle: 'Two network namespaces joined by a veth; the same implementation on both ends; "veth (raw)" is the underlay without WireGuard.',
    unit: 'Gbit/s',
    series: tests.map((t) => ({ name: t.name, color: t.color })),
    groups: tput.results.map((r) => ({
      label: r.subject,
      values: tests.map((t) => {
        const c = ok(r[t.key]);
        return c ? c.gbps : failed(r);
      }),
    })),
  }),
);
y += 345;

// Small panels, two per row.
const small: ((x: number, y: number, w: number, h: number) => string)[] = [];
// Tunnels pinged at the same time (pingSideBySide) share the machine's state, so that is the
// comparison shown when the results have it; each subject's own run otherwise.
const sideBySide = tput.results.some((r) => ok(r.pingSideBySide));
small.push((px, py, pw, ph) =>
  barPanel(px, py, pw, ph, {
    title: 'Ping RTT through the tunnel',
    subtitle: `${tput.settings?.pings ?? '?'} pings A → B, idle link${sideBySide ? ', all tunnels pinged at once' : ''}`,
    unit: 'ms',
    series: [
      { name: 'median', color: '#54A24B' },
      { name: 'p90', color: '#A6D49F' },
    ],
    groups: tput.results
      .filter((r) => !sideBySide || !r.subject.startsWith('veth'))
      .map((r) => {
        const p = ok(sideBySide ? r.pingSideBySide : r.ping);
        return { label: r.subject, values: p ? [p.medianMs, p.p90Ms] : [failed(r), null] };
      }),
  }),
);
const tunnels = tput.results.filter((r) => [r.tcp1Forward, r.tcp1Reverse, r.tcpParallel].some((c) => ok(c)?.deviceCpuSeconds !== undefined) || (r.error && !r.subject.startsWith('veth')));
if (tunnels.length) {
  small.push((px, py, pw, ph) =>
    barPanel(px, py, pw, ph, {
      title: 'Device CPU per gigabit carried',
      subtitle: 'both devices\' CPU seconds ÷ gigabits received (lower is better)',
      unit: 'CPU s / Gbit',
      series: tests.map((t) => ({ name: t.name, color: t.color })),
      groups: tunnels.map((r) => ({
        label: r.subject,
        values: tests.map((t) => {
          const c = ok(r[t.key]);
          const v = c ? cpuPerGbit(c) : null;
          return v ?? failed(r);
        }),
      })),
    }),
  );
}
if (hs) {
  // Newer files carry the generator's event-loop utilisation (busy share of its one thread, which
  // also counts time it was runnable but had no CPU), per round too; older ones only its CPU
  // seconds. One saturated round makes the total a lower bound.
  const saturated = (h: { generatorCpuSeconds: number; seconds: number; generatorEventLoopUtilization?: number; rounds?: { generatorEventLoopUtilization: number }[] }) =>
    h.generatorEventLoopUtilization !== undefined
      ? h.generatorEventLoopUtilization >= 0.9 || (h.rounds ?? []).some((w) => w.generatorEventLoopUtilization >= 0.9)
      : h.generatorCpuSeconds >= 0.9 * h.seconds * (hs.settings?.generators ?? 1);
  const anySaturated = hs.results.some((r) => {
    const h = ok(r.handshakes);
    return h !== null && saturated(h);
  });
  if (anySaturated) footnotes.push('≥: the load generator was saturated, so the handshake rate is a lower bound.');
  const hsSub = `handshake-rate ${day(hs.date)} · ${hs.settings?.peers ?? '?'} peers, ${hs.settings?.sources ?? '?'} source addresses, ≤ ${hs.settings?.inflight ?? '?'} in flight · ${hs.settings?.seconds ?? '?'} s`;
  small.push((px, py, pw, ph) =>
    barPanel(px, py, pw, ph, {
      title: 'Completed handshakes per second, one responder',
      subtitle: hsSub,
      unit: 'handshakes/s',
      legend: false,
      series: [{ name: 'handshakes/s', color: '#B279A2' }],
      groups: hs.results.map((r) => {
        const h = ok(r.handshakes);
        if (!h) return { label: r.subject, values: [failed(r)] };
        return {
          label: r.subject,
          values: [h.handshakesPerSecond],
          valueLabels: [`${saturated(h) ? '≥ ' : ''}${h.handshakesPerSecond.toFixed(0)}`],
          note: `responder ${Number.isFinite(h.responderCpuMsPerHandshake) ? h.responderCpuMsPerHandshake.toFixed(2) : '?'} CPU ms/handshake`,
        };
      }),
    }),
  );
  if (hs.results.some((r) => ok(r.pingFlood))) {
    small.push((px, py, pw, ph) =>
      barPanel(px, py, pw, ph, {
        title: 'Ping RTT under a handshake flood',
        subtitle: `median through the tunnel; flood: ${hs.settings?.floodRate ?? '?'} initiations/s with a valid mac1`,
        unit: 'ms',
        series: [
          { name: 'idle', color: '#9ECAE9' },
          { name: 'under flood', color: '#E45756' },
        ],
        groups: hs.results.map((r) => {
          const a = ok(r.pingIdle);
          const b = ok(r.pingFlood);
          const loss = b && b.lossPct !== undefined ? `${b.lossPct.toFixed(0)}% loss under flood` : undefined;
          return { label: r.subject, values: [a ? a.medianMs : failed(r), b ? b.medianMs : failed(r)], ...(loss ? { note: loss } : {}) };
        }),
      }),
    );
  }
}
const sw = (W - 60) / 2;
const sh = 250;
for (let i = 0; i < small.length; i += 2) {
  parts.push(small[i]!(20, y, sw, sh));
  if (small[i + 1]) parts.push(small[i + 1]!(40 + sw, y, sw, sh));
  y += sh + 16;
}
footnotes.push(`Sources: ${path.basename(throughputPath)}${hs && handshakePath ? `, ${path.basename(handshakePath)}` : ''} (bench/README.md). Compare columns of one run, not runs: the machine is shared.`);
footnotes.forEach((f, i) => parts.push(text(20, y + 8 + i * 14, f, { size: 10, fill: '#666' })));
const H = y + 8 + footnotes.length * 14;

const svg = `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">
<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>
${parts.join('\n')}
</svg>
`;
fs.mkdirSync(path.dirname(String(opt.out)), { recursive: true });
fs.writeFileSync(String(opt.out), svg);
console.log(`${path.relative(process.cwd(), String(opt.out))} (${Math.round(svg.length / 1024)} KiB) from ${path.relative(process.cwd(), throughputPath)}${handshakePath ? ` and ${path.relative(process.cwd(), handshakePath)}` : ''}`);
