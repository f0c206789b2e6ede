import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Paths redacted wherever they appear. Request bodies are never logged at all; this is the
 * second line for anything that reaches a log object by accident.
 */
export const REDACT_PATHS = [
  'req.headers.cookie',
  'req.headers.authorization',
  'headers.cookie',
  'headers.authorization',
  'res.headers["set-cookie"]',
  '*.password',
  '*.currentPassword',
  '*.newPassword',
  '*.token',
  '*.secret',
  '*.clientSecret',
  '*.cookie',
  'password',
  'token',
  'secret',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { service: 'palisade' } }, destination);
}
