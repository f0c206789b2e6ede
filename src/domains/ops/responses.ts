import { z } from 'zod';

/** Liveness: the process answers. */
export const liveness = z.object({ status: z.literal('ok') });

/** Readiness: the database answers (its engine stays unsaid). */
export const readiness = z.object({ status: z.literal('ready') });

/**
 * The OpenAPI 3.1 document: free-form here (its own shape is the OpenAPI specification's, and it
 * is validated as such by test/routes/openapi-contract.test.ts).
 */
export const openApiDocument = z.record(z.string(), z.unknown()).meta({ description: 'An OpenAPI 3.1 document' });
