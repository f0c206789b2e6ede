import { createContext, useContext, type ReactNode } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, call, isProblem } from '../api/client';
import type { paths } from '../api/schema.gen';

export type Me = paths['/api/me']['get']['responses'][200]['content']['application/json'];
export type MyOrg = Me['orgs'][number];

const MeContext = createContext<Me | null>(null);

export const ME_KEY = ['me'] as const;

/** null when signed out; the error of anything else. */
export function useMeQuery() {
  return useQuery({
    queryKey: ME_KEY,
    queryFn: async () => {
      try {
        return await call(api.GET('/api/me'));
      } catch (err) {
        if (isProblem(err, 'unauthenticated') || isProblem(err, 'session_expired')) return null;
        throw err;
      }
    },
    staleTime: 30_000,
  });
}

export function MeProvider({ me, children }: { me: Me; children: ReactNode }) {
  return <MeContext.Provider value={me}>{children}</MeContext.Provider>;
}

export function useMe(): Me {
  const me = useContext(MeContext);
  if (!me) throw new Error('useMe outside a signed-in page');
  return me;
}

export function useOrg(orgId: string | undefined): MyOrg | undefined {
  return useMe().orgs.find((o) => o.id === orgId);
}

/** After sign-in, sign-out or a role change: everything the console knows is re-read. */
export function useRefreshMe() {
  const qc = useQueryClient();
  return () => qc.invalidateQueries();
}
