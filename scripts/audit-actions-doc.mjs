// Writes docs/audit-actions.md from the kernel's catalogue (`npm run docs:audit-actions`);
// src/kernel/audit-actions.test.ts fails when the page and the catalogue disagree.
import { writeFileSync } from 'node:fs';
import { register } from 'tsx/esm/api';

register();
const { renderAuditActionsDoc } = await import('../src/kernel/audit-actions-doc.ts');
writeFileSync(new URL('../docs/audit-actions.md', import.meta.url), renderAuditActionsDoc());
