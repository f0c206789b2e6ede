import { fileTypeFromBuffer, supportedExtensions } from 'file-type';
import { AppError } from '../../kernel/errors.js';

/**
 * What a file is, from its first bytes (issue 16, check 3 of 5). The magic bytes (the `file-type`
 * package) must agree with the name's extension and with the content type the client declared,
 * and the type stored and served back is the one the bytes say, never the one declared. A file
 * whose type has no magic bytes (text: CSV, JSON, Markdown…) is accepted only under a text
 * extension, and only if its first bytes are UTF-8 text without NUL. Anything else — a type the
 * bytes cannot confirm, an executable whatever its name — is refused.
 */

/** How many leading bytes the check reads (file-type needs up to ~4 KB; Office formats more). */
export const HEAD_BYTES = 64 * 1024;

/** Types the bytes reveal that are programs, refused whatever the name says. */
const EXECUTABLE_TYPES: ReadonlySet<string> = new Set(['exe', 'elf', 'macho', 'class', 'wasm', 'dex', 'swf', 'msi', 'cab', 'deb', 'rpm', 'apk', 'jar', 'lnk', 'chm', 'dmg', 'pyc', 'xpi', 'crx']);

/** Text types (no magic bytes): extension → the content type stored for it. */
const TEXT_TYPES: Readonly<Record<string, string>> = {
  txt: 'text/plain',
  log: 'text/plain',
  csv: 'text/csv',
  tsv: 'text/tab-separated-values',
  json: 'application/json',
  md: 'text/markdown',
  yaml: 'application/yaml',
  yml: 'application/yaml',
  xml: 'application/xml',
  html: 'text/html',
  htm: 'text/html',
  svg: 'image/svg+xml',
  ics: 'text/calendar',
  vcf: 'text/vcard',
};

/** Text types whose files may open with an XML prolog. */
const XML_TEXT: ReadonlySet<string> = new Set(['xml', 'svg']);

/** Types a browser may run if shown inline: always served as attachments, never sniffed. */
const ACTIVE_TYPES: ReadonlySet<string> = new Set(['text/html', 'image/svg+xml', 'application/xml', 'text/xml', 'application/xhtml+xml']);

/** What clients commonly declare for a type, besides its own name (Windows' zip and CSV, old JPEG). */
const DECLARED_ALIASES: Readonly<Record<string, readonly string[]>> = {
  'application/zip': ['application/x-zip-compressed', 'application/zip-compressed', 'multipart/x-zip'],
  'image/jpeg': ['image/jpg', 'image/pjpeg'],
  'image/png': ['image/x-png'],
  'text/csv': ['application/vnd.ms-excel', 'text/plain', 'application/csv', 'text/x-csv'],
  'text/plain': [],
  'application/json': ['text/json', 'text/plain'],
  'text/markdown': ['text/x-markdown', 'text/plain'],
  'application/yaml': ['text/yaml', 'text/x-yaml', 'application/x-yaml', 'text/plain'],
  'application/xml': ['text/xml'],
  'text/tab-separated-values': ['text/plain'],
  'application/gzip': ['application/x-gzip'],
  'application/x-7z-compressed': [],
  'application/pdf': ['application/x-pdf'],
};

/** Extensions file-type knows by another spelling of the same type. */
const EXTENSION_ALIASES: Readonly<Record<string, string>> = { jpeg: 'jpg', jpe: 'jpg', tif: 'tiff', htm: 'html', yml: 'yaml', mpeg: 'mpg', tgz: 'gz' };

export interface CheckedContent {
  /** Stored and served back: what the bytes say. */
  contentType: string;
  /** An archive the archive check must open (zip and the formats built on it, tar, gzip…). */
  archive: 'zip' | 'other' | null;
  /** A type a browser could run inline: served only as an attachment, with `nosniff`. */
  active: boolean;
  /** A text type: the whole file, not only its head, must be UTF-8 without NUL (receive.ts checks the rest). */
  text: boolean;
}

export async function checkContent(head: Uint8Array, extension: string, declared: string | undefined): Promise<CheckedContent> {
  const ext = EXTENSION_ALIASES[extension] ?? extension;
  const declaredType = (declared ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  const detected = await fileTypeFromBuffer(head);
  // An XML prolog is all file-type sees of SVG and XML: their text check decides.
  if (detected && !(detected.ext === 'xml' && XML_TEXT.has(ext))) {
    if (EXECUTABLE_TYPES.has(detected.ext)) throw refuse(`the file is a program (${detected.ext}), which is not accepted whatever its name`);
    if (detected.ext !== ext) throw refuse(`the file's content is ${detected.ext}, not .${extension || '(no extension)'}`);
    if (!declaredAgrees(declaredType, detected.mime)) throw refuse(`the declared content type ${declaredType} does not match the file's content (${detected.mime})`);
    return { contentType: detected.mime, archive: archiveOf(detected.ext), active: ACTIVE_TYPES.has(detected.mime), text: false };
  }
  // Nothing recognised: a type that has magic bytes must have shown them.
  const text = TEXT_TYPES[ext];
  if (!text && (supportedExtensions as ReadonlySet<string>).has(ext)) throw refuse(`the file's content is not .${extension}`);
  if (!text) throw refuse(extension ? `.${extension} is not a type whose content can be checked` : 'a file without an extension must be recognisable from its content');
  if (!looksLikeText(head)) throw refuse(`a .${extension} file must be UTF-8 text`);
  if (!declaredAgrees(declaredType, text)) throw refuse(`the declared content type ${declaredType} does not match a .${extension} file (${text})`);
  return { contentType: text, archive: null, active: ACTIVE_TYPES.has(text), text: true };
}

function declaredAgrees(declared: string, actual: string): boolean {
  if (declared === '' || declared === 'application/octet-stream' || declared === actual) return true;
  return (DECLARED_ALIASES[actual] ?? []).includes(declared);
}

function archiveOf(ext: string): CheckedContent['archive'] {
  // The Office and OpenDocument formats are zip files, and clamd looks inside them too.
  if (['zip', 'docx', 'xlsx', 'pptx', 'odt', 'ods', 'odp', 'epub'].includes(ext)) return 'zip';
  if (['tar', 'gz', '7z', 'rar', 'bz2', 'xz', 'zst', 'lz', 'lzh', 'arj', 'cpio', 'ar'].includes(ext)) return 'other';
  return null;
}

/** UTF-8 without NUL in the bytes read (a character cut at the end of the head is fine). */
function looksLikeText(head: Uint8Array): boolean {
  if (head.includes(0)) return false;
  // Drop an incomplete last character: the head may end in the middle of one.
  let end = head.length;
  for (let back = 1; back <= 3 && end - back >= 0; back++) {
    const b = head[end - back] ?? 0;
    if ((b & 0xc0) === 0xc0) {
      const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
      if (back < need) end -= back;
      break;
    }
    if ((b & 0x80) === 0) break;
  }
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(0, end));
    return true;
  } catch {
    return false;
  }
}

function refuse(detail: string): AppError {
  return new AppError('unsupported_media_type', detail);
}
