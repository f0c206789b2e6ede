import { readFileSync } from 'node:fs';

/**
 * A secret setting read from `NAME` or from the file named by `NAME_FILE` (a mounted secret),
 * never both. A problem names the variable, never its value.
 */
export function settingOrFile(source: Record<string, string | undefined>, name: string, problems: string[]): string | undefined {
  const direct = source[name]?.trim();
  const file = source[`${name}_FILE`];
  if (direct && file) problems.push(`${name} and ${name}_FILE are both set: keep one`);
  if (file) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch {
      problems.push(`${name}_FILE cannot be read`);
      return undefined;
    }
  }
  return direct || undefined;
}
