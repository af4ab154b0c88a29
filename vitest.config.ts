import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Each file runs in its own process: tests start real erl nodes and servers.
    pool: 'forks',
    // Most files wait on BEAM nodes and servers rather than compute: two at a time fits 2 cores.
    maxWorkers: 2,
    minWorkers: 1,
    // Builds the fixture releases once per run (cached by source hash) before any file needs them.
    globalSetup: ['test/support/fixtures.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // The JSON report is what .ci/run counts from; the default reporter is for people.
    reporters: ['default', 'json'],
    outputFile: { json: '.test-results.json' },
  },
});
