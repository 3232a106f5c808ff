#!/usr/bin/env node
// `npx armalo-mcp`: the Armalo MCP server over stdio (docs/mcp.md). Needs ARMALO_URL, ARMALO_TOKEN and
// ARMALO_AGENT_ID. Runs the built code when there is a build (npm run build), else the TypeScript
// sources through tsx, so it works on a fresh clone after `npm ci`.
import { existsSync } from 'node:fs';
import process from 'node:process';
import { fileURLToPath, URL } from 'node:url';

const root = new URL('../', import.meta.url);
const built = new URL('dist/src/mcp/stdio.js', root);

let bridge;
if (existsSync(fileURLToPath(built))) {
  bridge = await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  bridge = await import(new URL('src/mcp/stdio.ts', root).href);
}
await bridge.runStdioBridge(process.env);
