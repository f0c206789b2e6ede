import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ALL_AUDIT_ACTIONS, isAuditAction, WEBHOOK_EVENT_TYPES } from './audit-actions.js';
import { renderAuditActionsDoc } from './audit-actions-doc.js';

describe('the audit action catalogue', () => {
  it('is documented: docs/audit-actions.md is the rendering of the catalogue', () => {
    const page = readFileSync(new URL('../../docs/audit-actions.md', import.meta.url), 'utf8');
    expect(page, 'run npm run docs:audit-actions').toBe(renderAuditActionsDoc());
  });

  it('names actions as domain.verb in lower case, each once', () => {
    for (const a of ALL_AUDIT_ACTIONS) expect(a).toMatch(/^[a-z_]+\.[a-z_]+$/);
    expect(new Set(ALL_AUDIT_ACTIONS).size).toBe(ALL_AUDIT_ACTIONS.length);
  });

  it('derives the webhook event types from it, and sign-in events are not among them', () => {
    expect(WEBHOOK_EVENT_TYPES.length).toBeGreaterThan(0);
    for (const t of WEBHOOK_EVENT_TYPES) expect(isAuditAction(t)).toBe(true);
    // Sign-ins are the system chain's, which no org subscribes to. One is the org's own business:
    // a break-glass sign-in past the org's SSO enforcement (issue 12 asks for its webhook event).
    expect(WEBHOOK_EVENT_TYPES.filter((t) => t.startsWith('auth.'))).toEqual(['auth.break_glass']);
  });

  it('refuses free strings', () => {
    expect(isAuditAction('asset.viewed')).toBe(false);
    expect(isAuditAction('toString')).toBe(false);
  });
});
