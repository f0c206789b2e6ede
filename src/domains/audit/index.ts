export { createAuditWriter } from './writer.js';
export type { AuditWriter, AuditEventInput, AuditResult, AuditDetails } from './writer.js';
export { verifyChain } from './verify.js';
export { chainKeysFrom } from './keys.js';
export type { ChainKeys } from './chain.js';
export type { ChainReport, Query } from './verify.js';
export { createAuditReader } from './reader.js';
export type { AuditReader, AuditQuery, AuditEventView } from './reader.js';
export { auditRoutes } from './routes.js';
