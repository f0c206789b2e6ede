import { deflateRawSync } from 'node:zlib';
import yazl from 'yazl';

/**
 * A zip writer for tests that need archives no well-behaved tool makes: names that leave the
 * root, entries sharing their data, encrypted flags, thousands of entries. Stored or deflated
 * entries, no data descriptors, no zip64.
 */

export interface ZipEntry {
  name: string;
  data: Buffer;
  deflate?: boolean;
  /** Sets the "encrypted" bit (the data is not actually encrypted). */
  encryptedFlag?: boolean;
  /** Another name in the local header than in the central directory (streaming extractors read this one). */
  localName?: string;
  /** An Info-ZIP Unicode Path extra field (0x7075) naming the entry otherwise in the central directory. */
  unicodePath?: string;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

export function crc32(data: Buffer): number {
  let c = 0xffffffff;
  for (const b of data) c = (CRC_TABLE[(c ^ b) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

interface Written {
  name: Buffer;
  extra: Buffer;
  flags: number;
  method: number;
  crc: number;
  compressed: number;
  size: number;
  offset: number;
}

/**
 * `aliases`: extra central-directory entries (name → the index of a written entry) pointing at
 * that entry's data: the overlapping-entry bomb.
 */
export function buildZip(entries: ZipEntry[], aliases: { name: string; of: number }[] = []): Buffer {
  const parts: Buffer[] = [];
  const written: Written[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const localName = Buffer.from(e.localName ?? e.name, 'utf8');
    let extra = Buffer.alloc(0);
    if (e.unicodePath !== undefined) {
      const path = Buffer.from(e.unicodePath, 'utf8');
      const field = Buffer.alloc(9);
      field.writeUInt16LE(0x7075, 0);
      field.writeUInt16LE(5 + path.length, 2);
      field.writeUInt8(1, 4);
      field.writeUInt32LE(crc32(name), 5);
      extra = Buffer.concat([field, path]);
    }
    const packed = e.deflate ? deflateRawSync(e.data) : e.data;
    // Traditional PKWARE encryption puts a 12-byte header before the data (not made real here).
    const body = e.encryptedFlag ? Buffer.concat([Buffer.alloc(12), packed]) : packed;
    const w: Written = { name, extra, flags: (e.encryptedFlag ? 1 : 0) | 0x800, method: e.deflate ? 8 : 0, crc: crc32(e.data), compressed: body.length, size: e.data.length, offset };
    const head = Buffer.alloc(30);
    head.writeUInt32LE(0x04034b50, 0);
    head.writeUInt16LE(20, 4);
    head.writeUInt16LE(w.flags, 6);
    head.writeUInt16LE(w.method, 8);
    head.writeUInt16LE(0, 10);
    head.writeUInt16LE(0x21, 12);
    head.writeUInt32LE(w.crc, 14);
    head.writeUInt32LE(w.compressed, 18);
    head.writeUInt32LE(w.size, 22);
    head.writeUInt16LE(localName.length, 26);
    head.writeUInt16LE(0, 28);
    parts.push(head, localName, body);
    offset += head.length + localName.length + body.length;
    written.push(w);
  }
  const central: Buffer[] = [];
  const all = [...written, ...aliases.map((a) => ({ ...(written[a.of] as Written), name: Buffer.from(a.name, 'utf8'), extra: Buffer.alloc(0) }))];
  for (const w of all) {
    const head = Buffer.alloc(46);
    head.writeUInt32LE(0x02014b50, 0);
    head.writeUInt16LE(20, 4);
    head.writeUInt16LE(20, 6);
    head.writeUInt16LE(w.flags, 8);
    head.writeUInt16LE(w.method, 10);
    head.writeUInt16LE(0, 12);
    head.writeUInt16LE(0x21, 14);
    head.writeUInt32LE(w.crc, 16);
    head.writeUInt32LE(w.compressed, 20);
    head.writeUInt32LE(w.size, 24);
    head.writeUInt16LE(w.name.length, 28);
    head.writeUInt16LE(w.extra.length, 30);
    head.writeUInt32LE(w.offset, 42);
    central.push(head, w.name, w.extra);
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(all.length, 8);
  end.writeUInt16LE(all.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

/** A well-formed zip made by yazl (what real tools write), for the content and scanner tests. */
export function yazlZip(entries: { name: string; data: Buffer }[]): Promise<Buffer> {
  const z = new yazl.ZipFile();
  for (const e of entries) z.addBuffer(e.data, e.name);
  z.end();
  const parts: Buffer[] = [];
  return new Promise((resolve, reject) => {
    z.outputStream.on('data', (b: Buffer) => parts.push(b));
    z.outputStream.on('end', () => resolve(Buffer.concat(parts)));
    z.outputStream.on('error', reject);
  });
}
