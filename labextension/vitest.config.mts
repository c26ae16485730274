import { defineConfig } from 'vitest/config';

// Unit tests of the pure modules (API errors, SSE parsing, formatting, state updates).
export default defineConfig({
  test: {
    include: ['src/__tests__/**/*.spec.ts'],
    environment: 'node'
  }
});
