import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';

/** The audit action catalogue the OpenAPI document publishes (x-palisade-audit-actions); empty if it cannot be read. */
export function useAuditActions(): string[] {
  const doc = useQuery({ queryKey: ['openapi'], queryFn: () => call(api.GET('/openapi.json')), staleTime: Infinity, retry: false });
  const list: unknown = doc.data && typeof doc.data === 'object' ? (doc.data as Record<string, unknown>)['x-palisade-audit-actions'] : undefined;
  return Array.isArray(list) ? list.filter((a): a is string => typeof a === 'string') : [];
}
