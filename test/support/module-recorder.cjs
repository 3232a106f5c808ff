// Preloaded (`node --require`) into a child process of the app: records every OpenTelemetry
// module (and bullmq-otel) it loads, through `require` (here) or `import` (the resolve hook
// registered below), one line each, into the file named by RECORD_OTEL_MODULES.
const Module = require('node:module');
const { appendFileSync } = require('node:fs');
const { pathToFileURL } = require('node:url');

const file = process.env.RECORD_OTEL_MODULES;
const wanted = (request) => request.includes('@opentelemetry/') || request === 'bullmq-otel';
if (file) {
  const load = Module._load;
  Module._load = function (request, parent, isMain) {
    if (wanted(request)) appendFileSync(file, `${request}\n`);
    return load.call(this, request, parent, isMain);
  };
  Module.register(pathToFileURL(`${__dirname}/module-recorder-hooks.mjs`), { data: { file } });
}
