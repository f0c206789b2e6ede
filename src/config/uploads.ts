import { join, resolve } from 'node:path';

/**
 * Uploads (issue 16): where clamd listens, where sealed files are kept, and each plan's limits.
 * With no PALISADE_CLAMD every upload is refused with a message naming it; only development and
 * test may opt out of scanning (PALISADE_UPLOADS_UNSCANNED=true), and production refuses that.
 */

export type ClamdAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

export interface UploadPlan {
  /** Largest single file (plaintext bytes). */
  fileBytes: number;
  /** Every file of the org together (plaintext bytes, uploads in flight included). */
  quotaBytes: number;
}

export type FileStoreSettings =
  | { kind: 'disk'; dir: string }
  | { kind: 's3'; bucket: string; prefix: string; region: string; endpoint: string | null; forcePathStyle: boolean;
      /** Both or neither; neither: the AWS SDK's own credential chain (instance role, AWS_* variables). */
      credentials: { accessKeyId: string; secretAccessKey: string } | null };

export interface UploadConfig {
  /** null: no scanner configured; uploads are refused unless `unscanned`. */
  clamd: { address: ClamdAddress; timeoutMs: number } | null;
  /** Development and test only: store files without a malware scan (every other check still runs). */
  unscanned: boolean;
  store: FileStoreSettings;
  /** Plan name → limits; an org's plan is org_settings.plan (`palisade orgs plan`). */
  plans: Readonly<Record<string, UploadPlan>>;
  /** Uploads one process receives at once (PALISADE_UPLOAD_CONCURRENCY): keep it below clamd's MaxQueue over every process. */
  concurrency: number;
  /** After `graceSeconds` an upload must average `minBytesPerSecond` (PALISADE_UPLOAD_MIN_RATE, _GRACE_SECONDS), or it is stopped. */
  pace: { graceSeconds: number; minBytesPerSecond: number };
}

export const DEFAULT_UPLOAD_PLANS = 'free=25M/1G,team=200M/50G,enterprise=2G/1T';

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** `25M`, `1G`, `512K`, `1048576`: binary units. */
export function parseByteSize(value: string): number | null {
  const m = /^(\d{1,12})([KMGT]?)$/i.exec(value.trim());
  if (!m) return null;
  const n = Number(m[1]) * (UNITS[(m[2] ?? '').toUpperCase()] ?? NaN);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** `tcp://host:port` or `unix:/path` (also `unix:///path`): the form PALISADE_CLAMD takes. */
export function parseClamdAddress(value: string): ClamdAddress | null {
  const unix = /^unix:(?:\/\/)?(\/[^\0]+)$/.exec(value);
  if (unix?.[1]) return { kind: 'unix', path: unix[1] };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== 'tcp:' || !url.hostname || url.pathname.replace(/^\/$/, '') !== '' || url.search || url.hash || url.username) return null;
  const port = Number(url.port || 3310);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { kind: 'tcp', host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port };
}

function parsePlans(spec: string, problems: string[]): Record<string, UploadPlan> {
  const plans: Record<string, UploadPlan> = {};
  for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([a-z][a-z0-9_-]{0,31})=([^/]+)\/(.+)$/.exec(part);
    const fileBytes = m ? parseByteSize(m[2] ?? '') : null;
    const quotaBytes = m ? parseByteSize(m[3] ?? '') : null;
    if (!m || fileBytes === null || quotaBytes === null) {
      problems.push(`PALISADE_UPLOAD_PLANS: "${part}" is not plan=<file size>/<quota> (e.g. team=200M/50G)`);
      continue;
    }
    if (fileBytes > quotaBytes) problems.push(`PALISADE_UPLOAD_PLANS: ${m[1]}'s file limit is larger than its quota`);
    plans[m[1] as string] = Object.freeze({ fileBytes, quotaBytes });
  }
  // An org's plan defaults to free (migration 041): it must have limits.
  if (!plans.free) problems.push('PALISADE_UPLOAD_PLANS must define the free plan (every org starts on it)');
  return plans;
}

export function uploadConfig(
  source: Record<string, string | undefined>,
  env: 'development' | 'test' | 'production',
  stateDir: string,
): { uploads: UploadConfig; problems: string[] } {
  const problems: string[] = [];
  const raw = source.PALISADE_CLAMD?.trim();
  const address = raw ? parseClamdAddress(raw) : null;
  if (raw && !address) problems.push('PALISADE_CLAMD must be tcp://host:port or unix:/path/to/clamd.ctl');
  const timeoutRaw = source.PALISADE_CLAMD_TIMEOUT_MS?.trim();
  const timeoutMs = timeoutRaw ? Number(timeoutRaw) : 10_000;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 300_000) problems.push('PALISADE_CLAMD_TIMEOUT_MS must be an integer from 100 to 300000');
  const unscannedRaw = source.PALISADE_UPLOADS_UNSCANNED?.trim();
  if (unscannedRaw !== undefined && unscannedRaw !== 'true' && unscannedRaw !== 'false') problems.push('PALISADE_UPLOADS_UNSCANNED must be true or false');
  const unscanned = unscannedRaw === 'true';
  if (unscanned && env === 'production') problems.push('PALISADE_UPLOADS_UNSCANNED is a development opt-out: production stores no file unscanned (set PALISADE_CLAMD)');
  const plans = parsePlans(source.PALISADE_UPLOAD_PLANS ?? DEFAULT_UPLOAD_PLANS, problems);
  const store = storeSettings(source, stateDir, problems);
  const concurrencyRaw = source.PALISADE_UPLOAD_CONCURRENCY?.trim();
  const concurrency = concurrencyRaw ? Number(concurrencyRaw) : 32;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1000) problems.push('PALISADE_UPLOAD_CONCURRENCY must be an integer from 1 to 1000');
  const graceSeconds = Number(source.PALISADE_UPLOAD_GRACE_SECONDS?.trim() || 30);
  const minBytesPerSecond = Number(source.PALISADE_UPLOAD_MIN_RATE?.trim() || 16384);
  if (!Number.isInteger(graceSeconds) || graceSeconds < 1 || graceSeconds > 3600) problems.push('PALISADE_UPLOAD_GRACE_SECONDS must be an integer from 1 to 3600');
  if (!Number.isInteger(minBytesPerSecond) || minBytesPerSecond < 0) problems.push('PALISADE_UPLOAD_MIN_RATE must be a whole number of bytes a second');
  return {
    uploads: Object.freeze({
      clamd: address ? Object.freeze({ address, timeoutMs }) : null, unscanned, store, plans: Object.freeze(plans), concurrency,
      pace: Object.freeze({ graceSeconds, minBytesPerSecond }),
    }),
    problems,
  };
}

function storeSettings(source: Record<string, string | undefined>, stateDir: string, problems: string[]): FileStoreSettings {
  const kind = source.PALISADE_FILE_STORE?.trim() || 'disk';
  if (kind === 'disk') return { kind, dir: resolve(source.PALISADE_FILE_DIR?.trim() || join(stateDir, 'files')) };
  if (kind !== 's3') {
    problems.push('PALISADE_FILE_STORE must be disk or s3');
    return { kind: 'disk', dir: join(stateDir, 'files') };
  }
  const bucket = source.PALISADE_S3_BUCKET?.trim() ?? '';
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) problems.push('PALISADE_FILE_STORE=s3 needs PALISADE_S3_BUCKET (a bucket name)');
  const endpoint = source.PALISADE_S3_ENDPOINT?.trim() || null;
  if (endpoint !== null && !/^https?:\/\/[^\s/]+\/?$/.test(endpoint)) problems.push('PALISADE_S3_ENDPOINT must be an http(s) origin');
  const prefix = source.PALISADE_S3_PREFIX?.trim() ?? '';
  if (prefix && !/^[A-Za-z0-9._/-]{1,200}\/$/.test(prefix)) problems.push('PALISADE_S3_PREFIX must end with / and hold only letters, digits, . _ - /');
  const accessKeyId = source.PALISADE_S3_ACCESS_KEY_ID?.trim();
  const secretAccessKey = source.PALISADE_S3_SECRET_ACCESS_KEY?.trim();
  if (Boolean(accessKeyId) !== Boolean(secretAccessKey)) problems.push('PALISADE_S3_ACCESS_KEY_ID and PALISADE_S3_SECRET_ACCESS_KEY go together');
  return {
    kind: 's3',
    bucket,
    prefix,
    region: source.PALISADE_S3_REGION?.trim() || 'us-east-1',
    endpoint,
    forcePathStyle: source.PALISADE_S3_FORCE_PATH_STYLE === 'true',
    credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : null,
  };
}
