// Preloaded (`node --import`) into a child process of the app: records every OpenTelemetry
// module (and bullmq-otel) it loads, through `require` (the patched loader below) or `import` (the
// resolve hook registered below), one line each, into the file named by RECORD_OTEL_MODULES.
import { appendFileSync } from 'node:fs';
import Module, { register } from 'node:module';
import process from 'node:process';
import { URL } from 'node:url';

const file = process.env.RECORD_OTEL_MODULES;
const wanted = (request) => request.includes('@opentelemetry/') || request === 'bullmq-otel';
if (file) {
  const load = Module._load;
  Module._load = function (request, parent, isMain) {
    if (wanted(request)) appendFileSync(file, `${request}\n`);
    return load.call(this, request, parent, isMain);
  };
  register(new URL('./module-recorder-hooks.mjs', import.meta.url), { data: { file } });
}
