/** How Palisade reaches an SMTP server. `password` is a secret: never logged, never in a message. */
export interface SmtpSettings {
  host: string;
  port: number;
  /** smtps://: TLS from the first byte (port 465 by default). */
  secure: boolean;
  /** smtp://…?requireTLS=true: STARTTLS or no delivery (a server that does not offer it is an error). */
  requireTLS: boolean;
  user: string | null;
  password: string | null;
  /** Connection, greeting and per-command socket timeout: a hanging server costs this, not a worker. */
  timeoutMs: number;
}

/**
 * Mail. `smtp` null: no transport, messages stay in the mail_outbox table for development and
 * tests to read (the development outbox). `from`: the sender of every message.
 */
export interface MailConfig {
  smtp: SmtpSettings | null;
  from: string;
}

const DEFAULT_TIMEOUT_MS = 5000;
// `Name <addr>` or `addr`, printable on one line (a CR or LF would add headers).
const FROM = /^(?:[^<>]{1,100} <[^\s<>@]+@[^\s<>@]+>|[^\s<>@]+@[^\s<>@]+)$/;
const CONTROL = /\p{Cc}/u;

/**
 * Reads SMTP_URL (or SMTP_URL_FILE), MAIL_FROM and SMTP_TIMEOUT_MS. Production refuses a
 * connection that could carry the password and the reset links in clear: smtps:// or STARTTLS
 * required. Problems never quote the URL (it holds the password).
 */
export function mailConfig(source: Record<string, string | undefined>, prod: boolean, publicOrigin: string): { mail: MailConfig; problems: string[] } {
  const problems: string[] = [];
  const from = source.MAIL_FROM?.trim() || `Palisade <no-reply@${new URL(publicOrigin).hostname}>`;
  if (!FROM.test(from) || CONTROL.test(from)) problems.push('MAIL_FROM must be an address or "Name <address>", on one line');
  const timeoutRaw = source.SMTP_TIMEOUT_MS?.trim();
  const timeoutMs = timeoutRaw ? Number(timeoutRaw) : DEFAULT_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 60_000) problems.push('SMTP_TIMEOUT_MS must be an integer from 100 to 60000');
  // SMTP_URL_FILE was resolved by loadConfig (resolveFileSettings).
  const raw = source.SMTP_URL?.trim() || undefined;
  if (!raw) return { mail: Object.freeze({ smtp: null, from }), problems };
  const smtp = parseSmtpUrl(raw, timeoutMs, problems);
  if (smtp && prod && !smtp.secure && !smtp.requireTLS) {
    problems.push('production refuses a plain SMTP_URL: use smtps:// (TLS) or smtp://…?requireTLS=true (STARTTLS required)');
  }
  return { mail: Object.freeze({ smtp, from }), problems };
}

function parseSmtpUrl(raw: string, timeoutMs: number, problems: string[]): SmtpSettings | null {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    problems.push('SMTP_URL is not a URL (smtp://user:password@host:port or smtps://…)');
    return null;
  }
  if (u.protocol !== 'smtp:' && u.protocol !== 'smtps:') {
    problems.push('SMTP_URL must start with smtp:// or smtps://');
    return null;
  }
  if (!u.hostname || (u.pathname !== '' && u.pathname !== '/') || u.hash) {
    problems.push('SMTP_URL must be smtp(s)://[user:password@]host[:port], with no path or fragment');
    return null;
  }
  // Only the one option we define: anything else (say, a TLS check switched off) is refused, not ignored.
  const keys = [...u.searchParams.keys()];
  const requireTLS = u.searchParams.get('requireTLS');
  if (keys.some((k) => k !== 'requireTLS') || (requireTLS !== null && requireTLS !== 'true' && requireTLS !== 'false')) {
    problems.push('SMTP_URL accepts one option: ?requireTLS=true');
    return null;
  }
  let user: string | null;
  let password: string | null;
  try {
    user = u.username ? decodeURIComponent(u.username) : null;
    password = u.password ? decodeURIComponent(u.password) : null;
  } catch {
    problems.push('SMTP_URL: the user or password is not valid percent-encoding');
    return null;
  }
  const secure = u.protocol === 'smtps:';
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port ? Number(u.port) : secure ? 465 : 587,
    secure,
    requireTLS: requireTLS === 'true',
    user,
    password,
    timeoutMs,
  };
}
