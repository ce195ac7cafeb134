// A small leveled logger with wireguard-go's LOG_LEVEL contract (error | verbose | silent), so
// weft-wg is a drop-in for scripts that set it. Lines go to stderr with a timestamp and a prefix.
export type LogLevel = 'silent' | 'error' | 'verbose';

export interface Logger {
  error(msg: string): void;
  verbose(msg: string): void;
}

export function parseLogLevel(text: string | undefined, fallback: LogLevel = 'error'): LogLevel {
  switch (text) {
    case 'verbose':
    case 'debug':
      return 'verbose';
    case 'error':
      return 'error';
    case 'silent':
      return 'silent';
    default:
      return fallback;
  }
}

export function createLogger(level: LogLevel, prefix: string, write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const emit = (tag: string, msg: string) => write(`${tag}: ${new Date().toISOString()} ${prefix}${msg}\n`);
  return {
    error: level === 'silent' ? () => {} : (msg) => emit('ERROR', msg),
    verbose: level === 'verbose' ? (msg) => emit('DEBUG', msg) : () => {},
  };
}

export const silentLogger: Logger = { error() {}, verbose() {} };
