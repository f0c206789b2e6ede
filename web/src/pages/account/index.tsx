import type { PageEntry } from '../entry';
import { Profile } from './Profile';

export const ACCOUNT_PAGES: PageEntry[] = [
  { path: 'profile', title: 'Profile and password', needs: 'GET /api/me', element: <Profile /> },
];
