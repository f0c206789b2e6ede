import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['node_modules', '.palisade', 'dist', 'web/dist', 'web/src/**/*.gen.ts', 'coverage', '.palisade-codegen'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: { ...globals.node } } },
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', {
        paths: [{ name: 'node:crypto', message: 'Only src/crypto may import node:crypto.' },
                { name: 'crypto', message: 'Only src/crypto may import node:crypto.' }],
      }],
    },
  },
  // The services and the processes that run without HTTP (the worker, the CLI) never see Fastify:
  // createServices is what the worker and the tests build on, so Fastify there would tie them to the server.
  {
    files: ['src/services.ts', 'src/worker.ts', 'src/cli.ts', 'src/startup.ts', 'src/domains/*/service.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [{ name: 'node:crypto', message: 'Only src/crypto may import node:crypto.' },
                { name: 'crypto', message: 'Only src/crypto may import node:crypto.' }],
        patterns: [{ group: ['fastify', '@fastify/*', '**/http/server.js', '**/http/pipeline.js', '**/app.js'], message: 'Services and the worker run without the HTTP app.' }],
      }],
    },
  },
  // Size budget (issue 11): today's largest file and function plus a margin, so growth past it
  // is a visible decision (split the file, or raise the budget in review), not a drift.
  {
    files: ['src/**/*.ts'],
    ignores: ['src/**/*.test.ts'],
    rules: {
      'max-lines': ['error', { max: 350, skipBlankLines: true, skipComments: true }],
      'max-lines-per-function': ['error', { max: 300, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    files: ['test/**/*.ts', 'src/**/*.test.ts'],
    rules: {
      'max-lines': ['error', { max: 520, skipBlankLines: true, skipComments: true }],
      'max-lines-per-function': ['error', { max: 340, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    files: ['bench/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: 420, skipBlankLines: true, skipComments: true }],
      'max-lines-per-function': ['error', { max: 230, skipBlankLines: true, skipComments: true }],
    },
  },
  // The console runs in the browser (and never imports node:crypto: it has no secrets to make).
  {
    files: ['web/src/**/*.{ts,tsx}'],
    languageOptions: { globals: { ...globals.browser }, parserOptions: { ecmaFeatures: { jsx: true } } },
  },
  {
    // The console build hashes its inputs to know when it is stale: a file digest, not a secret.
    files: ['src/crypto/**', 'test/**', 'bench/**', 'scripts/console-build.mjs'],
    rules: { 'no-restricted-imports': 'off' },
  },
);
