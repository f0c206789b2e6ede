import { ApiError } from '../api/client';

/** A failure in words: the server's title, its detail, and each field that failed. */
export function ProblemView({ error }: { error: unknown }) {
  if (!error) return null;
  const p = error instanceof ApiError ? error.problem : { title: 'Something went wrong', detail: String(error), errors: undefined, ssoStart: undefined };
  return (
    <div className="problem" role="alert">
      <strong>{p.title}</strong>
      {p.detail && p.detail !== p.title ? <p>{p.detail}</p> : null}
      {p.errors?.length ? (
        <ul>
          {p.errors.map((e) => (
            <li key={`${e.path}:${e.message}`}>
              <code>{e.path || 'request'}</code>: {e.message}
            </li>
          ))}
        </ul>
      ) : null}
      {p.ssoStart ? (
        <p>
          <a href={p.ssoStart}>Continue with your organization’s single sign-on</a>
        </p>
      ) : null}
    </div>
  );
}

/** A problem's field path as the form names it: the server prefixes where it looked (`body.email`). */
function formPath(path: string): string {
  return path.replace(/^(body|query|params)\.?/, '');
}

/** The message of the field named `path` in a validation problem, for aria-describedby. */
export function fieldError(error: unknown, path: string): string | undefined {
  if (!(error instanceof ApiError)) return undefined;
  const want = formPath(path);
  return error.problem.errors?.find((e) => {
    const p = formPath(e.path);
    return p === want || p.startsWith(`${want}.`);
  })?.message;
}
