// Sysctls: read every wanted key in one shell inside the namespace, write only those that differ
// (also in one shell). Keys use sysctl(8)'s spelling: dots as separators, or slashes when a
// component contains a dot ("net/ipv4/conf/eth0.100/rp_filter").
import type { BatchOutcome } from './batch.ts';
import type { Host } from './exec.ts';
import { oneLine } from './exec.ts';
import { KernelStateError } from './types.ts';

const KEY = /^[A-Za-z0-9_][A-Za-z0-9_.+\/-]*$/;

/** Path under /proc/sys for a key; throws KernelStateError for anything that could leave it. */
export function sysctlPath(key: string): string {
  if (typeof key !== 'string' || !KEY.test(key) || key.length > 200) throw new KernelStateError(`sysctl key ${JSON.stringify(key)} is not valid`);
  const parts = key.includes('/') ? key.split('/') : key.split('.');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) throw new KernelStateError(`sysctl key ${JSON.stringify(key)} is not valid`);
  return parts.join('/');
}

export function checkSysctlValue(value: unknown, key: string): string {
  if (typeof value !== 'string' && typeof value !== 'number') throw new KernelStateError(`sysctl ${key}: value must be a string`);
  const v = String(value);
  if (/[\n\0]/.test(v) || normaliseSysctlValue(v) === '') throw new KernelStateError(`sysctl ${key}: value ${JSON.stringify(v)} is not a single line`);
  return v;
}

/** Multi-field values print tab-separated and are written space-separated: compare them as words. */
export function normaliseSysctlValue(v: string): string {
  return v.trim().split(/\s+/).join(' ');
}

/**
 * Where sysctls live. In a container /proc/sys is read-only; the DaemonSet mounts the host's
 * /proc/sys/net elsewhere and names it with WEFT_SYSCTL_ROOT (the scripts read it as $R).
 */
const sysctlRoot = () => process.env.WEFT_SYSCTL_ROOT || '/proc/sys';
const READ = 'for p do if v=$(cat "$R/$p" 2>&1); then printf "ok\\t%s\\0" "$v"; else printf "err\\t%s\\0" "$v"; fi; done';
const WRITE =
  'while [ $# -ge 2 ]; do if e=$( { printf "%s\\n" "$2" > "$R/$1"; } 2>&1 ); then printf "ok\\0"; else printf "err\\t%s\\0" "$e"; fi; shift 2; done';

export type SysctlRead = { value: string } | { error: string };

export async function readSysctls(host: Host, keys: readonly string[]): Promise<Map<string, SysctlRead>> {
  const out = new Map<string, SysctlRead>();
  if (keys.length === 0) return out;
  const r = await host.exec('sh', ['-c', `R=${shellQuote(sysctlRoot())}; ${READ}`, 'sh', ...keys.map(sysctlPath)]);
  const fields = r.stdout.split('\0');
  keys.forEach((k, i) => {
    const f = fields[i];
    if (f === undefined) out.set(k, { error: oneLine(r.stderr) || `read failed (exit ${r.code})` });
    else if (f.startsWith('ok\t')) out.set(k, { value: f.slice(3) });
    else out.set(k, { error: oneLine(f.replace(/^err\t/, '')) });
  });
  return out;
}

/** Write the keys whose current value differs; reports "sysctl k = v (was w)". */
export async function applySysctls(host: Host, desired: ReadonlyArray<[string, string]>): Promise<BatchOutcome> {
  const out: BatchOutcome = { done: [], errors: [] };
  if (desired.length === 0) return out;
  const current = await readSysctls(
    host,
    desired.map(([k]) => k),
  );
  const writes: Array<[string, string, string]> = [];
  for (const [k, v] of desired) {
    const cur = current.get(k)!;
    if ('error' in cur) {
      out.errors.push(`sysctl ${k}: ${cur.error}`);
      continue;
    }
    if (normaliseSysctlValue(cur.value) !== normaliseSysctlValue(v)) writes.push([k, v, cur.value]);
  }
  if (writes.length === 0) return out;
  const r = await host.exec('sh', ['-c', `R=${shellQuote(sysctlRoot())}; ${WRITE}`, 'sh', ...writes.flatMap(([k, v]) => [sysctlPath(k), normaliseSysctlValue(v)])]);
  const fields = r.stdout.split('\0');
  writes.forEach(([k, v, was], i) => {
    const f = fields[i];
    if (f === 'ok') out.done.push(`sysctl ${k} = ${normaliseSysctlValue(v)} (was ${normaliseSysctlValue(was)})`);
    else out.errors.push(`sysctl ${k} = ${v}: ${f ? oneLine(f.replace(/^err\t/, '')) : oneLine(r.stderr) || `write failed (exit ${r.code})`}`);
  });
  return out;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
