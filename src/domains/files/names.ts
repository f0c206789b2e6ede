import { AppError } from '../../kernel/errors.js';

/**
 * What an uploaded file may be called (issue 16, check 2 of 5). The name is shown to people and
 * offered back on download, never used as a storage key; still, a name that hides what a file is
 * (an RTL override turning `invoice‮fdp.exe` into `invoiceexe.pdf`), that Windows would change
 * on save (a trailing dot or space, a reserved device name), or that carries a path, is refused
 * rather than cleaned up: a cleaned-up name is a different name than the uploader sees.
 */

/** Executable and script types, refused whatever the content says (lower case, without the dot). */
export const DENIED_EXTENSIONS: ReadonlySet<string> = new Set([
  // Windows executables, libraries, installers and shortcuts
  'exe', 'dll', 'scr', 'com', 'pif', 'cpl', 'sys', 'drv', 'ocx', 'msi', 'msp', 'mst', 'msc', 'msix', 'msixbundle',
  'appx', 'appxbundle', 'application', 'gadget', 'lnk', 'url', 'scf', 'inf', 'reg', 'hta', 'chm', 'hlp', 'cab',
  // Windows script hosts and shells
  'bat', 'cmd', 'vbs', 'vbe', 'vb', 'js', 'jse', 'wsf', 'wsh', 'wsc', 'ws', 'sct', 'shb', 'shs',
  'ps1', 'ps1xml', 'ps2', 'ps2xml', 'psc1', 'psc2', 'psm1', 'psd1', 'msh', 'msh1', 'msh2', 'mshxml', 'msh1xml', 'msh2xml',
  // Office add-ins and macro-enabled documents
  'xll', 'xlam', 'xla', 'ppam', 'docm', 'dotm', 'xlsm', 'xltm', 'xlsb', 'pptm', 'potm', 'ppsm', 'sldm',
  // Access and other Office executables
  'ade', 'adp', 'mda', 'mdb', 'mde', 'mdt', 'mdw', 'mdz', 'accde', 'prf', 'prg', 'ins', 'isp', 'job', 'crt',
  // Disk images that carry executables past download marks
  'iso', 'img', 'vhd', 'vhdx',
  // Unix, macOS and mobile executables and packages
  'sh', 'bash', 'zsh', 'csh', 'ksh', 'fish', 'command', 'run', 'bin', 'elf', 'so', 'dylib', 'app', 'dmg', 'pkg', 'mpkg',
  'deb', 'rpm', 'apk', 'aab', 'ipa', 'xap', 'jar', 'war', 'ear', 'class', 'wasm',
  // Server-side scripts a misconfigured web server would run
  'php', 'php3', 'php4', 'php5', 'php7', 'phtml', 'phar', 'asp', 'aspx', 'ashx', 'asmx', 'cer', 'jsp', 'jspx', 'cgi', 'pl',
  'py', 'pyc', 'pyw', 'rb', 'lua',
]);

/** Denied types a web server may run whichever extension of the name it is. */
const SERVER_SCRIPTS: ReadonlySet<string> = new Set(['php', 'php3', 'php4', 'php5', 'php7', 'phtml', 'phar', 'asp', 'aspx', 'ashx', 'asmx', 'jsp', 'jspx', 'cgi', 'pl', 'py']);

export const MAX_NAME_BYTES = 255;

/** Windows device names, with or without an extension (`con.txt` opens the console). */
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\..*)?$/i;
/**
 * C0 and C1 controls and DEL; bidirectional overrides, embeddings, isolates and marks; zero-width
 * characters and the BOM; the Unicode line and paragraph separators; the replacement character
 * (what a decoder makes of bytes that were not UTF-8).
 */
// eslint-disable-next-line no-control-regex -- control characters are what this refuses
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffd]/u;
/** Path separators and the characters Windows refuses in a name. */
const SEPARATORS_AND_RESERVED = /[/\\<>:"|?*]/;

export interface CheckedName {
  /** The name as given, in Unicode NFC (the form every later comparison uses). */
  name: string;
  /** Its last extension, lower case, without the dot; '' when there is none. */
  extension: string;
}

/**
 * `allowlist`: a project's own list of extensions (lower case, no dot), or null for any that is
 * not denied. An extension on the denylist is refused even if a project allows it.
 */
export function checkFileName(raw: string, allowlist: readonly string[] | null = null): CheckedName {
  const name = raw.normalize('NFC');
  if (name.length === 0) throw refuse('the file needs a name');
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw refuse(`the file name is longer than ${MAX_NAME_BYTES} bytes`);
  if (INVISIBLE.test(name)) throw refuse('the file name holds control, invisible or direction-changing characters');
  if (SEPARATORS_AND_RESERVED.test(name)) throw refuse('the file name holds a path separator or one of < > : " | ? *');
  if (/^\.+$/.test(name)) throw refuse('the file name is only dots');
  if (/[. ]$/.test(name) || /^ /.test(name)) throw refuse('the file name starts with a space or ends with a dot or a space');
  if (RESERVED.test(name) || RESERVED.test(name.split('.')[0] ?? '')) throw refuse('the file name is a reserved device name');
  const dot = name.lastIndexOf('.');
  const extension = dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
  if (DENIED_EXTENSIONS.has(extension)) throw refuse(`.${extension} files are not accepted (executable or script types)`);
  // A server that maps types by any extension (Apache's mod_mime) runs `shell.php.jpg`: a
  // server-side script type refuses the name wherever it stands. Not every denied type (a name
  // like `acme.com.pdf` is common and harmless).
  const script = name.toLowerCase().split('.').slice(1, -1).find((p) => SERVER_SCRIPTS.has(p));
  if (script !== undefined) throw refuse(`.${script} anywhere in a file name is not accepted (a server-side script type)`);
  if (allowlist && !allowlist.includes(extension)) {
    throw refuse(extension ? `.${extension} files are not accepted in this project` : 'this project accepts only files with one of its extensions');
  }
  return { name, extension };
}

function refuse(detail: string): AppError {
  return new AppError('validation_failed', detail, [{ path: 'file.name', message: detail }]);
}
