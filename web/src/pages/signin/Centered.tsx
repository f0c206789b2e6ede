import { useEffect, type ReactNode } from 'react';

/** The frame of the signed-out pages. */
export function Centered({ title, children }: { title: string; children: ReactNode }) {
  useEffect(() => {
    document.title = `${title} · Palisade`;
  }, [title]);
  return (
    <main className="centered">
      <h1>{title}</h1>
      {children}
    </main>
  );
}

/** The token of a mailed link: in the fragment (never sent to a server), taken off the address bar. */
export function takeFragmentToken(): string | null {
  const token = new URLSearchParams(window.location.hash.slice(1)).get('token');
  if (token) window.history.replaceState(null, '', window.location.pathname);
  return token;
}
