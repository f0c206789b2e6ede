import nodemailer from 'nodemailer';
import type { SmtpSettings } from '../../config/index.js';

export interface OutgoingMail {
  to: string;
  subject: string;
  text: string;
  html: string;
}

/**
 * Why a send failed, as a short fixed code: the server's own words may quote the message (and
 * its token), so they are never stored nor logged. `smtp_<code>` keeps the reply's number only.
 */
export type SendError = 'timeout' | 'unreachable' | 'tls' | 'auth' | 'protocol' | 'deadline' | 'error' | `smtp_${number}`;
export type SendOutcome = { ok: true } | { ok: false; error: SendError };

export interface MailTransport {
  send(mail: OutgoingMail): Promise<SendOutcome>;
  close(): void;
}

function errorCode(err: unknown): SendError {
  const e = err as { code?: unknown; responseCode?: unknown };
  if (e.code === 'ETIMEDOUT') return 'timeout';
  if (e.code === 'ECONNECTION' || e.code === 'ESOCKET' || e.code === 'EDNS') return 'unreachable';
  if (e.code === 'ETLS' || e.code === 'EREQUIRETLS') return 'tls';
  if (e.code === 'EAUTH' || e.code === 'ENOAUTH') return 'auth';
  if (typeof e.responseCode === 'number' && e.responseCode >= 200 && e.responseCode <= 599) return `smtp_${e.responseCode}`;
  if (e.code === 'EPROTOCOL') return 'protocol';
  return 'error';
}

/**
 * SMTP through nodemailer, one connection per message (a queue of rare security mails needs no
 * pool). Every timeout is set: a server that never greets, or stops answering, fails the send
 * after `timeoutMs` instead of holding a worker. `deadline` bounds a server that answers just
 * often enough to keep each timeout from firing. Nodemailer's logging is off: it would print
 * the conversation, body and AUTH included.
 */
export function createSmtpTransport(settings: SmtpSettings, from: string): MailTransport {
  const transporter = nodemailer.createTransport({
    host: settings.host,
    port: settings.port,
    secure: settings.secure,
    requireTLS: settings.requireTLS,
    ...(settings.user !== null ? { auth: { user: settings.user, pass: settings.password ?? '' } } : {}),
    connectionTimeout: settings.timeoutMs,
    greetingTimeout: settings.timeoutMs,
    socketTimeout: settings.timeoutMs,
    dnsTimeout: settings.timeoutMs,
    tls: { minVersion: 'TLSv1.2' },
    // Nothing in a message may make the sender read a file or fetch a URL.
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
    debug: false,
  });
  const deadlineMs = deadlineFor(settings.timeoutMs);
  return {
    async send(mail) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<SendOutcome>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, error: 'deadline' }), deadlineMs);
      });
      const sent = transporter
        .sendMail({
          from, to: mail.to, subject: mail.subject, text: mail.text, html: mail.html,
          // RFC 3834: an automatic message; auto-responders should not answer it.
          headers: { 'Auto-Submitted': 'auto-generated' },
        })
        .then((): SendOutcome => ({ ok: true }), (err: unknown): SendOutcome => ({ ok: false, error: errorCode(err) }));
      try {
        return await Promise.race([sent, deadline]);
      } finally {
        clearTimeout(timer);
      }
    },
    close() {
      transporter.close();
    },
  };
}

/** The longest one send may take: connect, greet, and a few commands each up to their timeout. */
export function deadlineFor(timeoutMs: number): number {
  return timeoutMs * 4;
}
