import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import dns2 from 'dns2';
import { startOidcProvider, type IdpAccount } from '../test/support/oidc.js';

/**
 * npm run dev:sso — a local identity provider and DNS server to try single sign-on with, on
 * loopback only (development; nothing here is for production):
 *  - an OpenID Provider (oidc-provider, development login pages: any login, any password) with
 *    one client for Palisade; a login that is an email address is that address, verified, and
 *    `ada@example.com+admins+eng` adds the groups admins and eng;
 *  - a DNS server answering the TXT records listed in a file (`<name> <value>` per line, re-read
 *    at every query), so a domain claim can be verified without touching real DNS.
 */
const IDP_PORT = Number(process.env.DEV_IDP_PORT ?? 4100);
const DNS_PORT = Number(process.env.DEV_DNS_PORT ?? 5300);
const ORIGIN = (process.env.PUBLIC_ORIGIN ?? 'http://127.0.0.1:3000').replace(/\/$/, '');
const TXT_FILE = resolve(process.env.DEV_DNS_FILE ?? 'dev-dns.txt');
const CLIENT_ID = 'palisade-dev';
const CLIENT_SECRET = 'dev-client-secret-not-for-production';

/** Every login is an account: `email+group+group` or any other name. */
class AnyAccount extends Map<string, IdpAccount> {
  override get(login: string): IdpAccount {
    const [email = login, ...groups] = login.split('+');
    return email.includes('@') ? { sub: login, email, email_verified: true, name: email.split('@')[0] ?? email, groups } : { sub: login, name: login, groups };
  }
}

function txtRecords(name: string): string[] {
  if (!existsSync(TXT_FILE)) return [];
  return readFileSync(TXT_FILE, 'utf8').split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([n, v]) => n?.toLowerCase().replace(/\.$/, '') === name && v !== undefined)
    .map(([, v]) => v as string);
}

async function main(): Promise<void> {
  const idp = await startOidcProvider({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [`${ORIGIN}/api/auth/sso/oidc/callback`] }],
    accounts: new AnyAccount(),
    port: IDP_PORT,
  });
  const { Packet } = dns2;
  const dns = dns2.createServer({
    udp: true,
    handle: (request, send) => {
      const response = Packet.createResponseFromRequest(request);
      const question = request.questions[0];
      const found = question?.type === Packet.TYPE.TXT ? txtRecords((question.name ?? '').toLowerCase()) : [];
      if (found.length === 0) response.header.rcode = 3; // NXDOMAIN
      for (const value of found) if (question) response.answers.push(Packet.createResourceFromQuestion(question, { ttl: 1, data: [value] }));
      void send(response);
    },
  });
  await dns.listen({ udp: { port: DNS_PORT, address: '127.0.0.1' } });
  process.stdout.write(
    [
      `OIDC issuer     ${idp.issuer}`,
      `client id       ${CLIENT_ID}`,
      `client secret   ${CLIENT_SECRET}`,
      `redirect URI    ${ORIGIN}/api/auth/sso/oidc/callback`,
      `DNS server      127.0.0.1:${DNS_PORT} (TXT records from ${TXT_FILE})`,
      '',
      `Start Palisade with: DNS_SERVERS=127.0.0.1:${DNS_PORT} PALISADE_WEBHOOKS_ALLOW_LOOPBACK=true npm start`,
      'Sign in at the IdP with any password; the login is the email address (add +group for groups).',
      '',
    ].join('\n'),
  );
  const stop = () => {
    void Promise.all([idp.close(), dns.close()]).then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
