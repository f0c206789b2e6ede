import type { PageEntry } from '../entry';
import { Profile } from './Profile';
import { Security } from './Security';
import { Passkeys } from './Passkeys';
import { Sessions } from './Sessions';
import { Social } from './Social';

export const ACCOUNT_PAGES: PageEntry[] = [
  { path: 'profile', title: 'Profile and password', needs: 'GET /api/me', element: <Profile /> },
  { path: 'security', title: 'Two-factor security', needs: 'GET /api/me/mfa', element: <Security /> },
  { path: 'passkeys', title: 'Passkeys', needs: 'GET /api/me/passkeys', element: <Passkeys /> },
  { path: 'sessions', title: 'Sessions', needs: 'GET /api/me/sessions', element: <Sessions /> },
  { path: 'social', title: 'Linked sign-in', needs: 'GET /api/me/social', element: <Social /> },
];
