// weft: the command-line entry point. Subcommands arrive with their issues; today: `demo`, `lab`.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTunnelDemo } from '../lab/tunnel-demo.ts';
import { LAB_USAGE, labCommand } from './lab.ts';
import { PEER_USAGE } from './peer.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const [cmd, ...rest] = process.argv.slice(2);

switch (cmd) {
  case 'demo': {
    // The demo builds network namespaces and runs iperf3: a host's tools, not the image's.
    if (spawnSync('iperf3', ['--version']).error || spawnSync('ip', ['netns', 'list']).status !== 0) {
      process.stderr.write('weft demo: needs root, network namespaces and iperf3 on a Linux host (bin/setup installs them); it does not run in the container image\n');
      process.exit(1);
    }
    const secondsFlag = rest.indexOf('--seconds');
    const seconds = secondsFlag >= 0 ? Number(rest[secondsFlag + 1]) : 3;
    await runTunnelDemo({ weftWg: path.join(repo, 'bin/weft-wg'), seconds, log: (l) => console.log(`weft: ${l}`) });
    break;
  }
  case 'lab': {
    process.exitCode = await labCommand(rest);
    break;
  }
  case 'peer':
  case 'unpeer':
  case 'announce': {
    const { peerCommand } = await import('./peer.ts');
    process.exitCode = await peerCommand(cmd, rest).catch((err: Error) => {
      process.stderr.write(`weft ${cmd}: ${err.message}\n`);
      return 1;
    });
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
  default: {
    const help = cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help';
    if (!help) process.stderr.write(`weft: unknown command '${cmd}'\n`);
    (help ? process.stdout : process.stderr).write(
      'Usage:\n  weft demo [--seconds N]\n      two namespaces joined by a weft-wg tunnel: ping, iperf3, wg show\n' +
        '  weft controller|gateway|agent [--store DIR | --kubeconfig FILE] [--key FILE] [--node NAME] [--metrics-port N]\n' +
        '      the long-running pieces, on the embedded store or a Kubernetes API (in-cluster by default)\n' +
        PEER_USAGE +
        LAB_USAGE.replace(/^Usage:\n/, ''),
    );
    process.exit(help ? 0 : 2);
  }
}
