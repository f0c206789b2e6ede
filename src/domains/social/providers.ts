import type * as client from 'openid-client';
import type { Clock } from '../../kernel/clock.js';
import type { SocialOidcProvider, SocialProvider } from '../../config/index.js';
import { authorizationRequest, configurationFor, discover, redeemCode, type EgressFetch } from '../sso/index.js';
import { githubProvider } from './github.js';

/** What a social sign-in proved about the user at the provider. */
export interface SocialIdentity {
  /** OIDC: the ID token's iss; GitHub: the origin of its authorization endpoint. */
  issuer: string;
  subject: string;
  email: string | null;
  /** Only the provider's explicit word that the mailbox is its user's. */
  emailVerified: boolean;
  name: string | null;
}

/** One provider's protocol: where the browser goes, and what its answer proves. */
export interface ProviderFlow {
  /** The authorization URL (PKCE S256, state; a nonce for OIDC) and the secrets the callback must match. */
  begin(redirectUri: string): Promise<{ url: string; state: string; nonce?: string; verifier: string }>;
  /** Redeems the callback's code against the flow's checks; throws CallbackFailed or DiscoveryFailed. */
  redeem(callbackUrl: URL, checks: { state: string; nonce?: string | undefined; verifier: string }): Promise<SocialIdentity>;
}

// Discovery documents are read once per this long (a failure is not kept); keys at every sign-in.
const CONFIG_TTL_MS = 10 * 60_000;

/** An OpenID Provider (Google, Microsoft personal accounts, …): the SSO domain's OIDC client, reused. */
function oidcProvider(p: SocialOidcProvider, egress: EgressFetch, allowInsecure: boolean, clock: Clock): ProviderFlow {
  const settings = { issuer: p.issuer, clientId: p.clientId, clientSecret: p.clientSecret };
  let cached: { at: number; metadata: Promise<client.ServerMetadata> } | null = null;
  async function configuration(): Promise<client.Configuration> {
    const now = clock.now().getTime();
    if (!cached || now - cached.at >= CONFIG_TTL_MS) {
      const metadata = discover(settings, egress, allowInsecure).then((config) => ({ ...config.serverMetadata() }));
      const entry = { at: now, metadata };
      metadata.catch(() => {
        if (cached === entry) cached = null;
      });
      cached = entry;
    }
    return configurationFor(await cached.metadata, settings, egress, clock.now());
  }
  return {
    async begin(redirectUri) {
      const req = await authorizationRequest(await configuration(), { redirectUri, scopes: p.scopes });
      return { url: req.url, state: req.state, nonce: req.nonce, verifier: req.verifier };
    },
    async redeem(callbackUrl, checks) {
      if (!checks.nonce) throw new Error('an OIDC flow without a nonce');
      const id = await redeemCode(await configuration(), callbackUrl, { state: checks.state, nonce: checks.nonce, verifier: checks.verifier });
      return { issuer: id.issuer, subject: id.subject, email: id.email, emailVerified: id.emailVerified, name: id.name };
    },
  };
}

export interface ConfiguredProvider {
  id: string;
  name: string;
  protocol: SocialProvider['protocol'];
  flow: ProviderFlow;
}

/** The deployment's providers by id, each with its protocol's flow. */
export function configuredProviders(providers: readonly SocialProvider[], egress: EgressFetch, allowInsecure: boolean, clock: Clock): Map<string, ConfiguredProvider> {
  return new Map(providers.map((p) => [p.id, {
    id: p.id, name: p.name, protocol: p.protocol,
    flow: p.protocol === 'github' ? githubProvider(p, egress) : oidcProvider(p, egress, allowInsecure, clock),
  }]));
}
