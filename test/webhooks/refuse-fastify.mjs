// `node --import` this file to make loading Fastify (or a plugin) fail the process: the proof that
// a process runs without the HTTP app, not merely without a listener.
import { register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

if (isMainThread) register(import.meta.url);

export async function resolve(specifier, context, next) {
  if (specifier === 'fastify' || specifier.startsWith('@fastify/')) {
    throw new Error(`refused: ${specifier} loaded by ${context.parentURL ?? 'the entry point'}`);
  }
  return next(specifier, context);
}
