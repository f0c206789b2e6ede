/** multipart/form-data bodies as a client sends them, and as an attacker bends them. */

export const BOUNDARY = 'palisade-test-boundary-7d1f';

export interface FormPart {
  field?: string;
  /** Absent: a plain field (no file name). */
  fileName?: string;
  type?: string;
  data: Buffer | string;
}

export function multipart(parts: FormPart[], opts: { close?: boolean } = {}): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disposition = `form-data; name="${p.field ?? 'file'}"${p.fileName === undefined ? '' : `; filename="${p.fileName}"`}`;
    const head = `--${BOUNDARY}\r\nContent-Disposition: ${disposition}\r\n${p.type ? `Content-Type: ${p.type}\r\n` : ''}\r\n`;
    chunks.push(Buffer.from(head, 'utf8'), Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data, 'utf8'), Buffer.from('\r\n'));
  }
  if (opts.close !== false) chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

export const MULTIPART_TYPE = `multipart/form-data; boundary=${BOUNDARY}`;

/** One file part: the common case. */
export const oneFile = (fileName: string, data: Buffer | string, type = 'application/octet-stream'): Buffer => multipart([{ fileName, data, type }]);
