import { useEffect, type ReactNode } from 'react';
import { NavLink, useNavigate, useParams } from 'react-router';
import { api, call } from '../api/client';
import { can } from '../api/access';
import { useMe, useRefreshMe } from '../auth/session';
import { ACCOUNT_PAGES, ORG_PAGES, type PageEntry } from '../pages/registry';

/** The signed-in frame: org switcher, the pages the viewer may see, sign-out. */
export function Shell({ page, children }: { page: PageEntry; children: ReactNode }) {
  const me = useMe();
  const { orgId } = useParams();
  const navigate = useNavigate();
  const refresh = useRefreshMe();
  const org = me.orgs.find((o) => o.id === orgId);
  useEffect(() => {
    document.title = `${page.title}${org ? ` · ${org.name}` : ''} · Palisade`;
  }, [page.title, org]);

  const signOut = async () => {
    await call(api.POST('/api/auth/logout')).catch(() => undefined);
    await refresh();
    navigate('/sign-in', { replace: true });
  };
  const switchOrg = (id: string) => {
    const target = me.orgs.find((o) => o.id === id);
    const same = ORG_PAGES.find((p) => p.path === page.path && can(target, p.needs));
    const first = same ?? ORG_PAGES.find((p) => can(target, p.needs));
    navigate(first ? `/orgs/${id}/${first.path}` : '/account/profile');
  };

  return (
    <div className="shell">
      <a className="skip" href="#main">Skip to content</a>
      <header>
        <span className="brand">Palisade</span>
        {me.orgs.length > 0 ? (
          <label className="switcher">
            <span>Organization</span>
            <select value={org?.id ?? ''} onChange={(e) => switchOrg(e.target.value)}>
              {org ? null : <option value="">Choose…</option>}
              {me.orgs.map((o) => (
                <option key={o.id} value={o.id}>
                  {o.name} ({o.roleLabel})
                </option>
              ))}
            </select>
          </label>
        ) : null}
        <span className="whoami">{me.user.email}</span>
        <button type="button" onClick={() => void signOut()}>Sign out</button>
      </header>
      <nav aria-label="Console">
        {org ? (
          <>
            <h2>{org.name}</h2>
            <ul>
              {ORG_PAGES.filter((p) => can(org, p.needs)).map((p) => (
                <li key={p.path}><NavLink to={`/orgs/${org.id}/${p.path}`}>{p.title}</NavLink></li>
              ))}
            </ul>
          </>
        ) : null}
        <h2>My account</h2>
        <ul>
          {ACCOUNT_PAGES.map((p) => (
            <li key={p.path}><NavLink to={`/account/${p.path}`}>{p.title}</NavLink></li>
          ))}
        </ul>
      </nav>
      <main id="main" tabIndex={-1}>
        <h1>{page.title}</h1>
        {children}
      </main>
    </div>
  );
}
