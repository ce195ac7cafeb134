// The health and metrics endpoint every weft process exposes (default :9090): /healthz says the
// process is alive, /readyz says it has done its first successful reconcile (or is a healthy
// standby), /metrics is the Prometheus exposition of its registry.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WeftMetrics } from './metrics.ts';

export interface Readiness {
  ready(): boolean;
  /** A human line for /readyz. */
  detail(): string;
}

export interface ObserveServer {
  port: number;
  close(): Promise<void>;
}

export function serveObservability(opts: { port: number; host?: string; metrics: WeftMetrics; readiness: Readiness; beforeScrape?: () => Promise<void> | void }): Promise<ObserveServer> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const reply = (code: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'method not allowed\n');
    switch (url) {
      case '/healthz':
      case '/livez':
        return reply(200, 'ok\n');
      case '/readyz': {
        const ok = opts.readiness.ready();
        return reply(ok ? 200 : 503, `${ok ? 'ok' : 'not ready'}: ${opts.readiness.detail()}\n`);
      }
      case '/metrics':
        void (async () => {
          try {
            await opts.beforeScrape?.();
            reply(200, await opts.metrics.registry.metrics(), opts.metrics.registry.contentType);
          } catch (err) {
            reply(500, `metrics: ${(err as Error).message}\n`);
          }
        })();
        return;
      default:
        return reply(404, 'not found\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}
