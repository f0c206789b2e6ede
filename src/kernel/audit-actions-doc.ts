import { ALL_AUDIT_ACTIONS, AUDIT_ACTIONS } from './audit-actions.js';

/** docs/audit-actions.md, rendered from the catalogue so the page cannot drift from the code. */
export function renderAuditActionsDoc(): string {
  const rows = ALL_AUDIT_ACTIONS.map((a) => {
    const spec: { description: string; webhook?: true } = AUDIT_ACTIONS[a];
    return `| \`${a}\` | ${spec.description} | ${spec.webhook ? 'yes' : ''} |`;
  });
  return [
    '# Audit actions',
    '',
    'Generated from `src/kernel/audit-actions.ts` by `npm run docs:audit-actions`; a test fails when',
    'this page and the catalogue disagree. Every state change appends one of these actions to the',
    'org\u2019s hash-chained trail in the same transaction; refusals append `authz.denied` or a',
    '`…_failed` action. The actions marked "webhook" are the event types an endpoint can subscribe',
    'to (successful events only); `*` subscribes to all of them, present and future.',
    '',
    '| action | recorded when | webhook |',
    '|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}
