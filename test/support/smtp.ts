import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

/**
 * What the loopback server does with the next message: take it, refuse the recipient (550),
 * defer the data (451), or never send its greeting (a hung server).
 */
export type SmtpMode = 'accept' | 'refuse' | 'defer' | 'hang';

export interface ReceivedMail {
  from: string;
  to: string[];
  raw: string;
}

export interface LoopbackSmtp {
  port: number;
  /** smtp://[user:password@]127.0.0.1:port */
  url: string;
  mode: SmtpMode;
  received: ReceivedMail[];
  /** Connections opened (a hung one included). */
  connections: number;
  /** Delay before accepting a message's data (to make concurrent senders overlap). */
  dataDelayMs: number;
  /** The credentials the server requires (started with `auth`); change them to refuse the client's. */
  auth: { user: string; password: string } | null;
  /** Successful AUTH exchanges. */
  authenticated: number;
  close(): Promise<void>;
}

/** A real SMTP server on loopback (smtp-server), plain text; with `auth`, it requires those credentials. */
export async function startSmtp(opts: { auth?: { user: string; password: string }; port?: number } = {}): Promise<LoopbackSmtp> {
  const state = { mode: 'accept' as SmtpMode, received: [] as ReceivedMail[], connections: 0, dataDelayMs: 0, auth: opts.auth ?? null, authenticated: 0 };
  const server = new SMTPServer({
    // Plain text on loopback: no STARTTLS offer (its built-in certificate would fail verification).
    disabledCommands: opts.auth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
    authOptional: !opts.auth,
    allowInsecureAuth: true,
    logger: false,
    closeTimeout: 50,
    onConnect(_session, callback) {
      state.connections++;
      // Hung: the greeting never comes; the client's greeting timeout must end it.
      if (state.mode !== 'hang') callback();
    },
    onAuth(auth, _session, callback) {
      if (state.auth && auth.username === state.auth.user && auth.password === state.auth.password) {
        state.authenticated++;
        callback(null, { user: auth.username });
      } else callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
    },
    onRcptTo(_address, _session, callback) {
      if (state.mode === 'refuse') callback(Object.assign(new Error('Mailbox unavailable'), { responseCode: 550 }));
      else callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        setTimeout(() => {
          if (state.mode === 'defer') {
            callback(Object.assign(new Error('Try again later'), { responseCode: 451 }));
            return;
          }
          state.received.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks).toString('utf8'),
          });
          callback();
        }, state.dataDelayMs);
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  const credentials = opts.auth ? `${encodeURIComponent(opts.auth.user)}:${encodeURIComponent(opts.auth.password)}@` : '';
  return Object.assign(state, {
    port,
    url: `smtp://${credentials}127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

/** A MIME part as a test reads it: its content type and its decoded text. */
export interface MimePart {
  type: string;
  text: string;
}

/**
 * The parts of a multipart message, decoded (quoted-printable or base64): enough to read what
 * nodemailer wrote without a MIME library. A single-part message is one part.
 */
export function mimeParts(raw: string): { headers: string; parts: MimePart[] } {
  const split = raw.indexOf('\r\n\r\n');
  const headers = raw.slice(0, split).replace(/\r\n[ \t]+/g, ' ');
  const boundary = /boundary="?([^";\r\n]+)"?/i.exec(headers)?.[1];
  const chunks = boundary ? raw.split(`--${boundary}`).slice(1, -1) : [raw];
  const parts = chunks.map((chunk) => {
    const body = chunk.replace(/^\r\n/, '');
    const at = body.indexOf('\r\n\r\n');
    const head = body.slice(0, at).replace(/\r\n[ \t]+/g, ' ');
    const content = body.slice(at + 4);
    const type = /^content-type:\s*([^;\r\n]+)/im.exec(head)?.[1]?.trim().toLowerCase() ?? 'text/plain';
    const encoding = /^content-transfer-encoding:\s*(\S+)/im.exec(head)?.[1]?.toLowerCase() ?? '7bit';
    return { type, text: decode(content, encoding) };
  });
  return { headers, parts };
}

function decode(content: string, encoding: string): string {
  if (encoding === 'base64') return Buffer.from(content.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (encoding === 'quoted-printable') {
    const bytes = content.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
    return Buffer.from(bytes, 'latin1').toString('utf8').replace(/\r\n/g, '\n').replace(/\n$/, '');
  }
  return content.replace(/\r\n/g, '\n').replace(/\n$/, '');
}
