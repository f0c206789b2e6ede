import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { ProblemView } from '../../ui/problem';
import { Loading, Paged, when } from '../../ui/table';

const KEY = ['me', 'social'];
interface Identity { provider: string; email: string; linkedAt: string; lastSignInAt: string | null }

/** Social sign-in identities linked to your account; unlinking one stops it signing you in. */
export function Social() {
  const list = useQuery({ queryKey: KEY, queryFn: () => call(api.GET('/api/me/social')) });
  return (
    <section aria-labelledby="social">
      <h2 id="social">Linked sign-in providers</h2>
      {list.isPending ? <Loading what="linked identities" /> : list.isError ? <ProblemView error={list.error} /> : (
        <Paged items={list.data.identities} label="Linked identities" empty="No social identities are linked." render={(i) => <Row key={i.provider} identity={i} />} />
      )}
    </section>
  );
}

function Row({ identity }: { identity: Identity }) {
  const unlink = useAction(() => call(api.DELETE('/api/me/social/{provider}', { params: { path: { provider: identity.provider } } })), { invalidate: [KEY] });
  return (
    <li>
      <strong>{identity.provider}</strong> <span>{identity.email}</span>{' '}
      <span>linked {when(identity.linkedAt)}, last sign-in {when(identity.lastSignInAt)}</span>{' '}
      <button type="button" disabled={unlink.isPending} aria-busy={unlink.isPending || undefined} onClick={() => unlink.mutate(undefined)} aria-label={`Unlink ${identity.provider}`}>
        {unlink.isPending ? 'Working…' : 'Unlink'}
      </button>
      <ProblemView error={unlink.error} />
    </li>
  );
}
