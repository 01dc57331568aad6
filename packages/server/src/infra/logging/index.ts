import pino, { type DestinationStream, type Logger } from 'pino';

export type { DestinationStream, Logger };

/** Paths whose values are secrets and must never reach a log line. */
const redactPaths = [
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
  'password',
  'token',
  'key',
  '*.password',
  '*.token',
  '*.key',
  '*.apiKey',
  '*.secret',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, redact: { paths: redactPaths, censor: '[redacted]' } }, destination);
}
