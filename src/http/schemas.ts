import { z } from 'zod';
import { normalizeUserText, userTextProblem } from '../kernel/text.js';
import { emailDomain } from '../kernel/domain-name.js';

/**
 * Every name or label a user chooses (review R4 finding 5): the kernel's one rule
 * (src/kernel/text.ts) — NFC, trimmed, 1..max code points, no control, bidi or invisible
 * formatting characters. A refusal is a 400 naming the field (`body.name`) and the reason.
 * `allowEmpty` is for optional free text that may be cleared (a description).
 */
export const userText = (max: number, opts: { allowEmpty?: boolean } = {}) =>
  z
    .string()
    .overwrite(normalizeUserText)
    .superRefine((s, ctx) => {
      const problem = userTextProblem(s, max, opts);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .meta({ minLength: opts.allowEmpty ? 0 : 1, maxLength: max });


export const email = z
  .string()
  .trim()
  .max(254)
  .email()
  // zod's pattern lets a domain label run past DNS's 63 characters (README trial): such an
  // address can receive no mail, and SSO could never match its domain.
  .refine((s) => emailDomain(s) !== null, 'the address\u2019s domain is not a valid host name')
  .transform((s) => s.toLowerCase());

export const uuid = z.uuid();

/** A moment as the API sends it: ISO 8601 in UTC (`Date.prototype.toISOString`). */
export const timestamp = z.iso.datetime();
export const orgParams = z.strictObject({ orgId: uuid });
export const projectParams = z.strictObject({ orgId: uuid, projectId: uuid });
export const slug = z.string().regex(/^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$/, 'lowercase letters, digits and dashes, 3-40 long');
