import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import dns2 from 'dns2';
import { startGithub, type GithubAccount } from '../test/support/github.js';
import { startOidcProvider, type IdpAccount } from '../test/support/oidc.js';

/**
 * npm run dev:sso — a local identity provider and DNS server to try single sign-on with, on
 * loopback only (development; nothing here is for production):
 *  - an OpenID Provider (oidc-provider, development login pages: any login, any password) with
 *    one client for Palisade; a login that is an email address is that address, verified, and
 *    `ada@example.com+admins+eng` adds the groups admins and eng;
 *  - the same IdP as the Google social preset (SOCIAL_GOOGLE_ISSUER), and a server speaking
 *    GitHub's OAuth 2 flow and API (any login; `name@example.com` is that verified address);
 *  - a DNS server answering the TXT records listed in a file (`<name> <value>` per line, re-read
 *    at every query), so a domain claim can be verified without touching real DNS.
 */
const IDP_PORT = Number(process.env.DEV_IDP_PORT ?? 4100);
const GITHUB_PORT = Number(process.env.DEV_GITHUB_PORT ?? 4101);
const DNS_PORT = Number(process.env.DEV_DNS_PORT ?? 5300);
const ORIGIN = (process.env.PUBLIC_ORIGIN ?? 'http://localhost:3000').replace(/\/$/, '');
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

/** Every GitHub login is an account: its id derived from the login, its address verified when it is one. */
class AnyGithubAccount extends Map<string, GithubAccount> {
  override has(): boolean {
    return true;
  }
  override get(login: string): GithubAccount {
    let id = 7;
    for (const c of login) id = (id * 31 + c.charCodeAt(0)) % 2_000_000_000;
    const email = login.includes('@') ? login : `${login}@users.noreply.example`;
    return { id: id + 1, login, name: login, emails: [{ email, primary: true, verified: login.includes('@') }] };
  }
}

async function main(): Promise<void> {
  const idp = await startOidcProvider({
    clients: [{
      client_id: CLIENT_ID, client_secret: CLIENT_SECRET,
      redirect_uris: [`${ORIGIN}/api/auth/sso/oidc/callback`, `${ORIGIN}/api/auth/social/google/callback`],
    }],
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
  const github = await startGithub({
    clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: `${ORIGIN}/api/auth/social/github/callback` }],
    accounts: new AnyGithubAccount(),
    port: GITHUB_PORT,
  });
  const g = github.url;
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
      'Social sign-in (Google preset on this IdP, GitHub on its loopback twin): add to the environment',
      `  SOCIAL_GOOGLE_ISSUER=${idp.issuer} SOCIAL_GOOGLE_CLIENT_ID=${CLIENT_ID} SOCIAL_GOOGLE_CLIENT_SECRET=${CLIENT_SECRET}`,
      `  SOCIAL_GITHUB_AUTHORIZE_URL=${g}/login/oauth/authorize SOCIAL_GITHUB_TOKEN_URL=${g}/login/oauth/access_token SOCIAL_GITHUB_API_URL=${g}`,
      `  SOCIAL_GITHUB_CLIENT_ID=${CLIENT_ID} SOCIAL_GITHUB_CLIENT_SECRET=${CLIENT_SECRET}`,
      'GitHub twin: type any login on its page; a login that is an email address is that verified address.',
      '',
    ].join('\n'),
  );
  const stop = () => {
    void Promise.all([idp.close(), dns.close(), github.close()]).then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
