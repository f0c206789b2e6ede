import { BrowserRouter, Navigate, Route, Routes, useParams } from 'react-router';
import { can } from './api/access';
import { MeProvider, useMe, useMeQuery } from './auth/session';
import { StepUpProvider } from './auth/step-up';
import { Shell } from './layout/Shell';
import { ACCOUNT_PAGES, ORG_PAGES, type PageEntry } from './pages/registry';
import { SignIn } from './pages/signin/SignIn';
import { SignUp } from './pages/signin/SignUp';
import { ResetPassword } from './pages/signin/ResetPassword';
import { AcceptInvitation, MagicLink, VerifyEmail } from './pages/signin/TokenPages';
import { DeletionPending } from './pages/governance/DeletionPending';
import { ProblemView } from './ui/problem';
import { Loading } from './ui/table';

export function App() {
  return (
    <BrowserRouter>
      <Routes>
        <Route path="/sign-in" element={<SignedOutOnly><SignIn /></SignedOutOnly>} />
        <Route path="/sign-in/link" element={<MagicLink />} />
        <Route path="/sign-up" element={<SignedOutOnly><SignUp /></SignedOutOnly>} />
        <Route path="/reset-password" element={<ResetPassword />} />
        <Route path="/verify-email" element={<VerifyEmail />} />
        <Route path="/invitations/accept" element={<AcceptInvitation />} />
        <Route path="*" element={<SignedIn />} />
      </Routes>
    </BrowserRouter>
  );
}

function SignedOutOnly({ children }: { children: React.ReactNode }) {
  const me = useMeQuery();
  if (me.isPending) return <Loading what="the console" />;
  return me.data ? <Navigate to="/" replace /> : children;
}

function SignedIn() {
  const me = useMeQuery();
  if (me.isPending) return <Loading what="the console" />;
  if (me.error) return <main className="centered"><ProblemView error={me.error} /></main>;
  // The query goes along: an SSO handover code sent to another page must still reach the sign-in.
  if (!me.data) return <Navigate to={`/sign-in${window.location.search}`} replace />;
  return (
    <MeProvider me={me.data}>
      <StepUpProvider>
        <Routes>
          <Route path="/" element={<Home />} />
          {ACCOUNT_PAGES.map((p) => (
            <Route key={p.path} path={`/account/${p.path}`} element={<Shell page={p}>{p.element}</Shell>} />
          ))}
          {ORG_PAGES.map((p) => (
            <Route key={p.path} path={`/orgs/:orgId/${p.path}`} element={<OrgPage page={p} />} />
          ))}
          <Route path="*" element={<Shell page={{ path: '', title: 'Not found', needs: 'GET /api/me', element: null }}><p>There is no such page.</p></Shell>} />
        </Routes>
      </StepUpProvider>
    </MeProvider>
  );
}

/** A page of an org the viewer may not see says so; the nav never links to it. */
function OrgPage({ page }: { page: PageEntry }) {
  const { orgId } = useParams();
  const org = useMe().orgs.find((o) => o.id === orgId);
  if (!org || !can(org, page.needs)) {
    return (
      <Shell page={{ ...page, title: 'Not available' }}>
        <p role="alert">This page is not available to you{org ? ` in ${org.name}` : ''}: your role there does not include it.</p>
      </Shell>
    );
  }
  // Scheduled for deletion: every page of it is the deletion's status (the server refuses the rest).
  if (org.deletion) return <Shell page={{ ...page, title: 'Scheduled for deletion' }}><DeletionPending org={org} /></Shell>;
  return <Shell page={page}>{page.element}</Shell>;
}

function Home() {
  const me = useMe();
  for (const org of me.orgs) {
    const first = ORG_PAGES.find((p) => can(org, p.needs));
    if (first) return <Navigate to={`/orgs/${org.id}/${first.path}`} replace />;
  }
  return <Navigate to="/account/profile" replace />;
}
