// A minimal informer: watch some kinds from a list's resourceVersion and call `onChange` whenever
// any of them changes. Re-lists on Gone (the version fell out of history), backs off on errors,
// and coalesces bursts, so a reconciler runs once per burst, not once per event.
import { isStoreError, type Store } from './types.ts';

export interface Informer {
  stop(): void;
}

export function inform(store: Store, kinds: readonly string[], onChange: () => void, opts: { debounceMs?: number; onError?: (err: Error) => void } = {}): Informer {
  let stopped = false;
  const stops: (() => void)[] = [];
  let timer: NodeJS.Timeout | null = null;
  const poke = () => {
    if (stopped || timer) return;
    timer = setTimeout(() => {
      timer = null;
      if (!stopped) onChange();
    }, opts.debounceMs ?? 30);
  };

  const follow = async (kind: string) => {
    let backoff = 100;
    while (!stopped) {
      try {
        const { resourceVersion } = await store.list(kind);
        poke();
        const w = store.watch(kind, { resourceVersion });
        stops.push(() => w.stop());
        for await (const ev of w.events) {
          if (stopped) break;
          if (ev.type !== 'BOOKMARK') poke();
          backoff = 100;
        }
      } catch (err) {
        if (stopped) return;
        if (!isStoreError(err, 'Gone')) opts.onError?.(err as Error);
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  };
  for (const kind of kinds) void follow(kind);
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      for (const s of stops) s();
    },
  };
}
