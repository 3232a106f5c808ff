import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { chromium, type Browser } from 'playwright-core';

/**
 * A real browser for the console's end-to-end tests: Debian's chromium, driven by playwright-core
 * (which downloads no browser of its own). `CHROMIUM_PATH` overrides where it is.
 */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Whether the browser tests run here. Without chromium they are skipped with a message, except in
 * CI (`CI` set), where a missing browser must fail the run rather than silently test nothing.
 */
export function browserAvailability(): { run: boolean; reason?: string } {
  if (existsSync(CHROMIUM_PATH)) return { run: true };
  if (process.env.CI) return { run: true, reason: `CI is set but ${CHROMIUM_PATH} is missing: .ci/run installs it (apt-get install -y chromium)` };
  return { run: false, reason: `skipping the console browser tests: no chromium at ${CHROMIUM_PATH} (apt-get install -y chromium, or set CHROMIUM_PATH)` };
}

export async function launchChromium(): Promise<Browser> {
  // We run as root in CI containers: chromium's sandbox needs a user namespace it cannot get there.
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'], headless: true });
}

/** A TCP port free right now on 127.0.0.1 (for an app whose public URL must be known before it starts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
