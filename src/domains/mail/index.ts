export { createOutboxMail, outboxRef, recipientRef } from './outbox.js';
export type { MailMessage, MailPort } from './outbox.js';
export { quotedLine, renderHtml } from './template.js';
export { createSmtpTransport } from './smtp.js';
export type { MailTransport, OutgoingMail, SendError, SendOutcome } from './smtp.js';
export { createMailWorker, MAIL_MAX_ATTEMPTS, MAIL_RETRY_DELAYS_SECONDS } from './worker.js';
export type { MailWorker } from './worker.js';
