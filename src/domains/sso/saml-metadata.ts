import { DOMParser, type Document, type Element } from '@xmldom/xmldom';
import { parseCertificate } from '../../crypto/index.js';
import { AppError } from '../../kernel/errors.js';

/** Largest IdP metadata document accepted (ADFS federation metadata runs to tens of kilobytes). */
export const MAX_METADATA_BYTES = 60 * 1024;
/** Certificates kept per connection: the current one and a few announced for rollover. */
export const MAX_IDP_CERTIFICATES = 4;

const MD = 'urn:oasis:names:tc:SAML:2.0:metadata';
const DS = 'http://www.w3.org/2000/09/xmldsig#';
const REDIRECT_BINDING = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';

/** What the SP needs of an IdP: who it is, where to send the browser, which keys sign for it. */
export interface IdpDescriptor {
  entityId: string;
  ssoUrl: string;
  /** PEM, each checked to parse as an X.509 certificate. */
  certificates: string[];
}

/** Why an IdP description was refused, in words for the admin who pasted it (never echoing it). */
export class MetadataRefused extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(reason);
    this.name = 'MetadataRefused';
  }
}

/**
 * XML from outside is refused before any parser sees it when it declares a document type: that
 * is where external entities (XXE) and entity expansion (billion laughs) live, and neither SAML
 * metadata nor a SAML response has a use for one. Processing instructions other than the XML
 * declaration are refused for the same reason.
 */
export function hasForbiddenMarkup(xml: string): boolean {
  return /<!DOCTYPE|<!ENTITY|<\?(?!xml[\s?])/i.test(xml);
}

/** A strict parse: any well-formedness error (even one xmldom would recover from) refuses the document. */
export function parseXmlStrict(xml: string): Document | null {
  try {
    const doc = new DOMParser({
      onError: (level: string) => {
        if (level !== 'warning') throw new Error('not well-formed');
      },
    }).parseFromString(xml, 'text/xml');
    return doc;
  } catch {
    return null;
  }
}

/** An https URL (http only where plain-http IdPs are allowed: development and tests). */
export function checkIdpUrl(value: string, allowInsecure: boolean): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'not a URL';
  }
  if (url.username || url.password) return 'a URL with credentials';
  if (url.protocol === 'https:' || (allowInsecure && url.protocol === 'http:')) return null;
  return 'must use https';
}

export function checkEntityId(value: string): string | null {
  if (value.length === 0 || value.length > 1024) return 'an entity id of 1 to 1024 characters';
  if (!/^[\x21-\x7E]+$/.test(value)) return 'printable ASCII without spaces';
  return null;
}

/** IdP certificates from PEM or base64 text: each must parse, at least one, at most MAX_IDP_CERTIFICATES. */
export function checkCertificates(list: readonly string[], path: string): string[] {
  if (list.length === 0) throw new MetadataRefused(path, 'at least one signing certificate is needed');
  if (list.length > MAX_IDP_CERTIFICATES) throw new MetadataRefused(path, `at most ${MAX_IDP_CERTIFICATES} signing certificates`);
  const pems = list.map((text, i) => {
    const cert = parseCertificate(text);
    if (!cert) throw new MetadataRefused(`${path}.${i}`, 'not an X.509 certificate (PEM or base64 DER)');
    if (cert.publicKeyType !== 'rsa' && cert.publicKeyType !== 'ec') throw new MetadataRefused(`${path}.${i}`, 'the certificate must hold an RSA or EC key');
    return cert.pem;
  });
  return [...new Set(pems)];
}

/**
 * Reads an IdP's SAML 2.0 metadata: exactly one EntityDescriptor with an IDPSSODescriptor, its
 * HTTP-Redirect SingleSignOnService, and the certificates of its signing KeyDescriptors (those
 * with use="signing" or no use). Refuses a DOCTYPE, malformed XML, a document over the size cap,
 * an aggregate of several IdPs, and anything missing.
 */
export function parseIdpMetadata(xml: string, allowInsecure: boolean): IdpDescriptor {
  const path = 'metadataXml';
  if (Buffer.byteLength(xml, 'utf8') > MAX_METADATA_BYTES) throw new MetadataRefused(path, `metadata is limited to ${MAX_METADATA_BYTES / 1024} KiB`);
  if (hasForbiddenMarkup(xml)) throw new MetadataRefused(path, 'a DOCTYPE, entity declaration or processing instruction is not accepted in metadata');
  const doc = parseXmlStrict(xml);
  if (!doc?.documentElement) throw new MetadataRefused(path, 'the metadata is not well-formed XML');
  const idps = Array.from(doc.getElementsByTagNameNS(MD, 'IDPSSODescriptor'));
  if (idps.length !== 1) throw new MetadataRefused(path, idps.length === 0 ? 'no IDPSSODescriptor: not the metadata of a SAML identity provider' : 'several identity providers in one document: paste the metadata of one');
  const idp = idps[0] as Element;
  const entity = idp.parentNode as Element | null;
  if (!entity || entity.namespaceURI !== MD || entity.localName !== 'EntityDescriptor') throw new MetadataRefused(path, 'the IDPSSODescriptor is not inside an EntityDescriptor');
  const entityId = entity.getAttribute('entityID') ?? '';
  const entityProblem = checkEntityId(entityId);
  if (entityProblem) throw new MetadataRefused(path, `entityID: ${entityProblem}`);
  const sso = Array.from(idp.getElementsByTagNameNS(MD, 'SingleSignOnService')).find((e) => e.getAttribute('Binding') === REDIRECT_BINDING);
  const ssoUrl = sso?.getAttribute('Location') ?? '';
  if (!ssoUrl) throw new MetadataRefused(path, 'no SingleSignOnService with the HTTP-Redirect binding');
  const urlProblem = checkIdpUrl(ssoUrl, allowInsecure);
  if (urlProblem) throw new MetadataRefused(path, `SingleSignOnService Location: ${urlProblem}`);
  const certs: string[] = [];
  for (const kd of Array.from(idp.getElementsByTagNameNS(MD, 'KeyDescriptor'))) {
    const use = kd.getAttribute('use');
    if (use && use !== 'signing') continue;
    for (const c of Array.from(kd.getElementsByTagNameNS(DS, 'X509Certificate'))) certs.push(c.textContent ?? '');
  }
  return { entityId, ssoUrl, certificates: checkCertificates(certs, path) };
}

/** The IdP a create request describes: from its metadata, or from its parts; a refusal is a 422 naming the field. */
export function samlIdpOf(
  input: { metadataXml?: string | undefined; idpEntityId?: string | undefined; ssoUrl?: string | undefined; certificates?: readonly string[] | undefined },
  allowInsecure: boolean,
): { entityId: string; ssoUrl: string; certificates: string[] } {
  try {
    if (input.metadataXml !== undefined) {
      if (input.idpEntityId !== undefined || input.ssoUrl !== undefined || input.certificates !== undefined) {
        throw new MetadataRefused('metadataXml', 'give the metadata XML or idpEntityId, ssoUrl and certificates, not both');
      }
      return parseIdpMetadata(input.metadataXml, allowInsecure);
    }
    if (input.idpEntityId === undefined || input.ssoUrl === undefined || input.certificates === undefined) {
      throw new MetadataRefused('metadataXml', 'give the IdP\u2019s metadata XML, or idpEntityId, ssoUrl and certificates');
    }
    const entityProblem = checkEntityId(input.idpEntityId);
    if (entityProblem) throw new MetadataRefused('idpEntityId', entityProblem);
    const urlProblem = checkIdpUrl(input.ssoUrl, allowInsecure);
    if (urlProblem) throw new MetadataRefused('ssoUrl', urlProblem);
    return { entityId: input.idpEntityId, ssoUrl: input.ssoUrl, certificates: checkCertificates(input.certificates, 'certificates') };
  } catch (err) {
    if (err instanceof MetadataRefused) throw new AppError('validation_failed', err.reason, [{ path: err.path, message: err.reason }]);
    throw err;
  }
}

export function samlCertificates(list: readonly string[]): string[] {
  try {
    return checkCertificates(list, 'certificates');
  } catch (err) {
    if (err instanceof MetadataRefused) throw new AppError('validation_failed', err.reason, [{ path: err.path, message: err.reason }]);
    throw err;
  }
}
