import { useMutation, useQueryClient, type QueryKey } from '@tanstack/react-query';
import { useWithStepUp } from '../auth/step-up';

/**
 * A console action: a mutation that goes through the step-up flow when the server asks for it
 * and re-reads the queries it changes. Pages use this, never a fetch of their own.
 */
export function useAction<V, T>(fn: (vars: V) => Promise<T>, opts: { invalidate?: QueryKey[]; onSuccess?: (result: T, vars: V) => void } = {}) {
  const withStepUp = useWithStepUp();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (vars: V) => withStepUp(() => fn(vars)),
    onSuccess: async (result, vars) => {
      await Promise.all((opts.invalidate ?? []).map((queryKey) => qc.invalidateQueries({ queryKey })));
      opts.onSuccess?.(result, vars);
    },
  });
}
