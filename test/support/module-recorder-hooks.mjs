// Module customization hooks for module-recorder.mjs: records the OpenTelemetry modules imported.
import { appendFileSync } from 'node:fs';

let file;
export function initialize(data) {
  file = data.file;
}

export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (file && (specifier.includes('@opentelemetry/') || specifier === 'bullmq-otel')) appendFileSync(file, `${specifier}\n`);
  return result;
}
