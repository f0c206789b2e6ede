/**
 * A minimal POSIX ustar writer: regular files only, names under 100 bytes, sizes known up front
 * (each archive entry is one batch, held in memory). Enough for `tar -x`, Python's tarfile and
 * any tool that reads POSIX archives; we need nothing else of the format.
 */
const BLOCK = 512;

function field(buf: Buffer, offset: number, length: number, value: string): void {
  buf.write(value, offset, length, 'ascii');
}

/** `value` as a zero-padded octal number of `length - 1` digits and a NUL. */
function octal(buf: Buffer, offset: number, length: number, value: number): void {
  const digits = value.toString(8);
  if (digits.length > length - 1) throw new Error('tar field overflow');
  field(buf, offset, length, `${digits.padStart(length - 1, '0')}\0`);
}

export function tarHeader(name: string, size: number, mtime: Date): Buffer {
  if (Buffer.byteLength(name) >= 100 || !/^[A-Za-z0-9._/-]+$/.test(name)) throw new Error(`tar entry name not supported: ${name}`);
  const h = Buffer.alloc(BLOCK, 0);
  field(h, 0, 100, name);
  octal(h, 100, 8, 0o600);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, Math.floor(mtime.getTime() / 1000));
  field(h, 148, 8, '        '); // the checksum is computed with its own field as spaces
  field(h, 156, 1, '0');
  field(h, 257, 6, 'ustar\0');
  field(h, 263, 2, '00');
  field(h, 265, 32, 'palisade');
  field(h, 297, 32, 'palisade');
  let sum = 0;
  for (const b of h) sum += b;
  field(h, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

/** One file of the archive: header, data, padding to the block size. */
export function tarEntry(name: string, data: Buffer, mtime: Date): Buffer {
  const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
  return Buffer.concat([tarHeader(name, data.length, mtime), data, Buffer.alloc(pad, 0)]);
}

/** Two zero blocks end an archive. */
export const TAR_END = Buffer.alloc(2 * BLOCK, 0);

/** Reads back the entries of an archive held in memory (tests, verification of small archives). */
/**
 * The entries of an archive held in memory. Throws when anything but zeros follows the end
 * marker: an entry hidden there would be skipped by a verifier and extracted by `tar -i`.
 */
export function* tarEntries(archive: Buffer): Generator<{ name: string; data: Buffer }> {
  let at = 0;
  while (at + BLOCK <= archive.length) {
    const h = archive.subarray(at, at + BLOCK);
    if (h.every((b) => b === 0)) {
      if (!archive.subarray(at).every((b) => b === 0)) throw new Error('data after the end of the archive');
      return;
    }
    const name = h.subarray(0, 100).toString('ascii').replace(/\0.*$/s, '');
    const size = parseInt(h.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim(), 8);
    yield { name, data: archive.subarray(at + BLOCK, at + BLOCK + size) };
    at += BLOCK + size + ((BLOCK - (size % BLOCK)) % BLOCK);
  }
}
