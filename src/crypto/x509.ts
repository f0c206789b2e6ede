import { X509Certificate } from 'node:crypto';

/** What an admin needs to recognise an IdP signing certificate, and the certificate as PEM. */
export interface CertificateInfo {
  pem: string;
  subject: string;
  notAfter: string;
  /** SHA-256 fingerprint, colon-separated hex: what IdP consoles show. */
  fingerprint256: string;
  /** The certificate holds an RSA or EC public key (what XML signatures are verified with). */
  publicKeyType: string;
}

/**
 * A certificate given as PEM or as the bare base64 of its DER (what SAML metadata carries), or
 * null when it does not parse as an X.509 certificate. Only the public part is ever handled here.
 */
export function parseCertificate(text: string): CertificateInfo | null {
  const body = text.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  if (body.length === 0 || body.length > 16_384 || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return null;
  const pem = `-----BEGIN CERTIFICATE-----\n${body.match(/.{1,64}/g)?.join('\n') ?? body}\n-----END CERTIFICATE-----\n`;
  try {
    const cert = new X509Certificate(pem);
    return {
      pem,
      subject: cert.subject.replace(/\n/g, ', ').slice(0, 300),
      notAfter: new Date(cert.validTo).toISOString(),
      fingerprint256: cert.fingerprint256,
      publicKeyType: cert.publicKey.asymmetricKeyType ?? 'unknown',
    };
  } catch {
    return null;
  }
}
