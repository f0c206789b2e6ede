import { useState, type ReactNode } from 'react';

const PAGE = 20;

/** A list that pages (long lists never render whole). */
export function Paged<T>({ items, render, empty, label }: { items: readonly T[]; render: (item: T) => ReactNode; empty: string; label: string }) {
  const [page, setPage] = useState(0);
  const pages = Math.max(1, Math.ceil(items.length / PAGE));
  const current = Math.min(page, pages - 1);
  if (items.length === 0) return <p className="empty">{empty}</p>;
  return (
    <>
      <ul className="list" aria-label={label}>
        {items.slice(current * PAGE, current * PAGE + PAGE).map(render)}
      </ul>
      {pages > 1 ? (
        <nav className="pager" aria-label={`${label} pages`}>
          <button type="button" disabled={current === 0} onClick={() => setPage(current - 1)}>Previous</button>
          <span>
            Page {current + 1} of {pages}
          </span>
          <button type="button" disabled={current >= pages - 1} onClick={() => setPage(current + 1)}>Next</button>
        </nav>
      ) : null}
    </>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="loading" role="status">
      Loading {what}…
    </p>
  );
}

export function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '—';
}
