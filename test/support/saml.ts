import { randomBytes, webcrypto } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import * as x509 from '@peculiar/x509';
import { SignedXml } from 'xml-crypto';

/** An IdP signing key: the private key (PKCS#8 PEM) and its self-signed certificate. */
export interface IdpKey {
  privateKeyPem: string;
  certPem: string;
  /** The certificate's DER in base64, as metadata and KeyInfo carry it. */
  certBase64: string;
}

const pem = (label: string, der: ArrayBuffer) =>
  `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').match(/.{1,64}/g)?.join('\n')}\n-----END ${label}-----\n`;

/** A fresh RSA-2048 key and a self-signed certificate for it, made with WebCrypto (no openssl). */
export async function idpKey(name: string): Promise<IdpKey> {
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomBytes(8).toString('hex'), name: `CN=${name}`, keys: keys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]['keys'], signingAlgorithm: alg,
      notBefore: new Date(Date.now() - 86_400_000), notAfter: new Date(Date.now() + 365 * 86_400_000),
    },
    webcrypto as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[1],
  );
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const certBase64 = Buffer.from(cert.rawData).toString('base64');
  return { privateKeyPem: pem('PRIVATE KEY', pkcs8), certPem: pem('CERTIFICATE', cert.rawData), certBase64 };
}

const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const ENVELOPED = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature';
const SHA256 = 'http://www.w3.org/2001/04/xmlenc#sha256';

/** Signs the element `xpath` selects (enveloped, exclusive c14n, RSA-SHA256), the signature placed after its Issuer. */
export function signElement(xml: string, key: IdpKey, xpath: string): string {
  const sig = new SignedXml({ privateKey: key.privateKeyPem, publicCert: key.certPem, signatureAlgorithm: RSA_SHA256, canonicalizationAlgorithm: EXC_C14N });
  sig.addReference({ xpath, transforms: [ENVELOPED, EXC_C14N], digestAlgorithm: SHA256 });
  sig.computeSignature(xml, { location: { reference: `${xpath}/*[local-name(.)='Issuer']`, action: 'after' } });
  return sig.getSignedXml();
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
export const newSamlId = () => `_${randomBytes(16).toString('hex')}`;

export interface AssertionSpec {
  /** The SP: its ACS URL (Destination, Recipient) and entity id (Audience). */
  acsUrl: string;
  audience: string;
  nameId: string;
  nameIdFormat?: string;
  /** Absent: an IdP-initiated (unsolicited) response. */
  inResponseTo?: string | undefined;
  attributes?: Record<string, string | string[]>;
  issuer?: string;
  recipient?: string;
  destination?: string;
  assertionId?: string;
  /** Times, relative to now in ms (NotBefore defaults to -60 s, NotOnOrAfter to +5 min). */
  notBefore?: number;
  notOnOrAfter?: number;
  signAssertion?: boolean;
  signResponse?: boolean;
  /** Signs with this key instead of the IdP's own (a forger's). */
  key?: IdpKey;
}

/**
 * A SAML 2.0 identity provider that really signs (xml-crypto, its own keys): its metadata, and
 * responses built to order, each signed like ADFS, Okta or Entra ID sign them (assertion, then
 * response). The tests break them afterwards in the ways attackers do.
 */
export class TestSamlIdp {
  readonly ssoUrl: string;

  constructor(readonly entityId: string, readonly key: IdpKey) {
    this.ssoUrl = `https://idp.test/${encodeURIComponent(entityId)}/sso`;
  }

  metadataXml(extraCerts: IdpKey[] = []): string {
    const kd = (k: IdpKey) =>
      `<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>${k.certBase64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`;
    return `<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="${esc(this.entityId)}">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    ${[this.key, ...extraCerts].map(kd).join('\n    ')}
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="${esc(this.ssoUrl)}"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="${esc(this.ssoUrl)}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`;
  }

  /** The AuthnRequest the SP sent in a redirect (HTTP-Redirect binding: deflated, base64, in the query). */
  static requestOf(location: string): { id: string; acsUrl: string; issuer: string; xml: string } {
    const url = new URL(location);
    const xml = inflateRawSync(Buffer.from(url.searchParams.get('SAMLRequest') ?? '', 'base64')).toString('utf8');
    const attr = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(xml)?.[1] ?? '';
    return { id: attr('ID'), acsUrl: attr('AssertionConsumerServiceURL'), issuer: /<saml:Issuer[^>]*>([^<]*)</.exec(xml)?.[1] ?? '', xml };
  }

  /** The unsigned XML of a Response carrying one Assertion. */
  unsignedResponse(spec: AssertionSpec): { xml: string; assertionId: string } {
    const now = Date.now();
    const assertionId = spec.assertionId ?? newSamlId();
    const issuer = esc(spec.issuer ?? this.entityId);
    const irt = spec.inResponseTo ? ` InResponseTo="${esc(spec.inResponseTo)}"` : '';
    const notBefore = iso(now + (spec.notBefore ?? -60_000));
    const notOnOrAfter = iso(now + (spec.notOnOrAfter ?? 300_000));
    const attrs = Object.entries(spec.attributes ?? {})
      .map(([name, v]) => `<saml:Attribute Name="${esc(name)}">${(Array.isArray(v) ? v : [v]).map((x) => `<saml:AttributeValue>${esc(x)}</saml:AttributeValue>`).join('')}</saml:Attribute>`)
      .join('');
    const xml = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${newSamlId()}" Version="2.0" IssueInstant="${iso(now)}" Destination="${esc(spec.destination ?? spec.acsUrl)}"${irt}>`
      + `<saml:Issuer>${issuer}</saml:Issuer>`
      + `<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>`
      + `<saml:Assertion ID="${assertionId}" Version="2.0" IssueInstant="${iso(now)}">`
      + `<saml:Issuer>${issuer}</saml:Issuer>`
      + `<saml:Subject><saml:NameID Format="${esc(spec.nameIdFormat ?? 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress')}">${esc(spec.nameId)}</saml:NameID>`
      + `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="${notOnOrAfter}" Recipient="${esc(spec.recipient ?? spec.acsUrl)}"${irt}/></saml:SubjectConfirmation></saml:Subject>`
      + `<saml:Conditions NotBefore="${notBefore}" NotOnOrAfter="${notOnOrAfter}"><saml:AudienceRestriction><saml:Audience>${esc(spec.audience)}</saml:Audience></saml:AudienceRestriction></saml:Conditions>`
      + `<saml:AuthnStatement AuthnInstant="${iso(now)}" SessionIndex="${newSamlId()}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`
      + (attrs ? `<saml:AttributeStatement>${attrs}</saml:AttributeStatement>` : '')
      + `</saml:Assertion></samlp:Response>`;
    return { xml, assertionId };
  }

  /** A Response signed as asked (by default: assertion signed, then the whole response). */
  response(spec: AssertionSpec): string {
    const key = spec.key ?? this.key;
    let { xml } = this.unsignedResponse(spec);
    if (spec.signAssertion !== false) xml = signElement(xml, key, "//*[local-name(.)='Assertion']");
    if (spec.signResponse !== false) xml = signElement(xml, key, "/*[local-name(.)='Response']");
    return xml;
  }
}

/** The form body an IdP's auto-submitting page posts to the ACS. */
export function samlForm(xml: string, relayState?: string): string {
  const form = new URLSearchParams({ SAMLResponse: Buffer.from(xml, 'utf8').toString('base64') });
  if (relayState !== undefined) form.set('RelayState', relayState);
  return form.toString();
}
