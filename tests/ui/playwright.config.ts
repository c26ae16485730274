/**
 * End-to-end tests of the BoxRun JupyterLab extension: a real `jupyter lab` (started by
 * global-setup.ts) driven through Debian's headless Chromium. Never downloads browsers.
 */
import { defineConfig } from '@playwright/test';
import * as path from 'path';

export const ARTIFACTS = path.resolve(__dirname, '..', '..', 'test-artifacts');

export default defineConfig({
  testDir: '.',
  testMatch: '*.spec.ts',
  // BOXRUN_DASH_URL: the dashboard specs against a `boxrun serve` the caller started
  // (tests/ui/test_dashboard.py); otherwise every spec against a `jupyter lab` of its own.
  globalSetup: process.env.BOXRUN_DASH_URL ? undefined : require.resolve('./global-setup'),
  outputDir: path.join(ARTIFACTS, 'ui-results'),
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 120_000,
  expect: { timeout: 20_000 },
  reporter: [['list']],
  use: {
    browserName: 'chromium',
    headless: true,
    viewport: { width: 1400, height: 900 },
    launchOptions: {
      executablePath: process.env.BOXRUN_UI_CHROMIUM || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync'
      ]
    },
    screenshot: 'only-on-failure',
    trace: process.env.BOXRUN_UI_TRACE ? 'retain-on-failure' : 'off'
  }
});
