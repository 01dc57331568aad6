import pino, { type Logger } from 'pino';

export type { Logger };

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

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: redactPaths, censor: '[redacted]' } }, destination);
}
