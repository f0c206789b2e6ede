import createClient from 'openapi-fetch';
import type { paths } from './schema.gen';

/**
 * The one client of the console: typed by the server's own OpenAPI document (schema.gen.ts is
 * generated from the live route table), same origin, the session cookie sent by the browser.
 * fetch sends the Origin header on every non-GET request, which is what the CSRF check reads.
 */
export const api = createClient<paths>({ baseUrl: '', credentials: 'same-origin' });

export interface FieldIssue {
  path: string;
  message: string;
}

/** An RFC 9457 answer of the server (src/http/problem.ts). */
export interface Problem {
  status: number;
  code: string;
  title: string;
  detail?: string;
  errors?: FieldIssue[];
  ssoStart?: string;
  requestId?: string;
}

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail ?? problem.title);
    this.name = 'ApiError';
  }

  get code(): string {
    return this.problem.code;
  }
}

function problemOf(body: unknown, response: Response): Problem {
  if (body && typeof body === 'object' && 'code' in body && 'title' in body) return body as Problem;
  return { status: response.status, code: response.status >= 500 ? 'unavailable' : 'unexpected', title: `The server answered ${response.status}` };
}

type Answer<T> = { data?: T; error?: unknown; response: Response };

/** The data of a successful answer, or an ApiError carrying the problem the server sent. */
export async function call<T>(request: Promise<Answer<T>>): Promise<T> {
  let answer: Answer<T>;
  try {
    answer = await request;
  } catch {
    throw new ApiError({ status: 0, code: 'network', title: 'The server could not be reached: check the connection and retry' });
  }
  if (answer.response.ok) return answer.data as T;
  throw new ApiError(problemOf(answer.error, answer.response));
}

export function isProblem(err: unknown, code: string): err is ApiError {
  return err instanceof ApiError && err.code === code;
}
