export function consoleInputsHash(): string;
export function consoleIsCurrent(): boolean;
export function ensureConsole(opts?: { force?: boolean; log?: (message: string) => void }): boolean;
