export { createInboundService, receivePath, MAX_SOURCES_PER_ORG } from './service.js';
export type { InboundService, InboundHandler, AppliedEvent, InboundDeps } from './service.js';
export type { SourceView, Receipt } from './responses.js';
export { inboundRoutes } from './routes.js';
export { BUILTIN_PROVIDERS, standardWebhooks, stripe, TOLERANCE_SECONDS, DeliveryRejected, rejectDelivery, singleHeader, freshTimestamp } from './providers.js';
export type { InboundProvider, InboundEvent, InboundHeaders, RejectReason } from './providers.js';
