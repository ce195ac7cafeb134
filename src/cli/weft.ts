// weft: the command-line entry point. Subcommands arrive with their issues; today: `demo`, `lab`.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTunnelDemo } from '../lab/tunnel-demo.ts';
import { LAB_USAGE, labCommand } from './lab.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const [cmd, ...rest] = process.argv.slice(2);

switch (cmd) {
  case 'demo': {
    const secondsFlag = rest.indexOf('--seconds');
    const seconds = secondsFlag >= 0 ? Number(rest[secondsFlag + 1]) : 3;
    await runTunnelDemo({ weftWg: path.join(repo, 'bin/weft-wg'), seconds, log: (l) => console.log(`weft: ${l}`) });
    break;
  }
  case 'lab': {
    process.exitCode = await labCommand(rest);
    break;
  }
  case 'controller':
  case 'gateway':
  case 'agent': {
    const { runDaemon } = await import('./daemons.ts');
    await runDaemon(cmd, rest).catch((err: Error) => {
      process.stderr.write(`weft ${cmd}: ${err.message}\n`);
      process.exit(2);
    });
    break;
  }
  default:
    process.stderr.write(
      'Usage:\n  weft demo [--seconds N]\n      two namespaces joined by a weft-wg tunnel: ping, iperf3, wg show\n' +
        '  weft controller|gateway --store DIR [--key FILE] [--interface-prefix P]\n  weft agent --store DIR --node NAME\n      the long-running pieces, on the embedded store\n' +
        LAB_USAGE.replace(/^Usage:\n/, ''),
    );
    process.exit(cmd === undefined || cmd === '--help' ? 0 : 2);
}
