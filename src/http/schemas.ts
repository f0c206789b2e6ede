import { z } from 'zod';

/** Shared request-shape pieces: every text field is bounded and free of control characters. */
export const text = (max: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    // eslint-disable-next-line no-control-regex -- matching control characters is the point
    .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'control characters are not allowed');

export const email = z
  .string()
  .trim()
  .max(254)
  .email()
  .transform((s) => s.toLowerCase());

export const uuid = z.uuid();
export const orgParams = z.strictObject({ orgId: uuid });
export const projectParams = z.strictObject({ orgId: uuid, projectId: uuid });
export const slug = z.string().regex(/^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$/, 'lowercase letters, digits and dashes, 3-40 long');
export const noQuery = z.strictObject({});
