# Armalo chat-ops: one image for every role (ARMALO_ROLE=web|worker|all) and for migrations.
#
#   docker build -t armalo-chatops .
#   docker run --rm -e DATABASE_URL=... armalo-chatops node dist/src/cli/migrate.js   # migrate first
#   docker run -p 3000:3000 -e DATABASE_URL=... -e REDIS_URL=... -e ARMALO_API_TOKENS=... armalo-chatops
#
# The build needs only the npm registry (whatever npm is configured to use).

ARG NODE_IMAGE=node:22-bookworm-slim

# ---- build: all dependencies, TypeScript -> dist/ ---------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# npm workspaces: the agent SDK's manifest must be there for npm ci.
COPY sdk/package.json ./sdk/package.json
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY jobs ./jobs
COPY migrations ./migrations
# tsc keeps the top-level layout: dist/src, dist/jobs, dist/migrations (the migrator looks for
# ../../migrations relative to dist/src/db).
RUN npm run build

# ---- runtime: production dependencies and the compiled code only ------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
COPY sdk/package.json ./sdk/package.json
# Fonts for the text in trust-packet charts (rendered to PNG without a browser).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core && rm -rf /var/lib/apt/lists/*
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY policy ./policy
# Files stay owned by root and read-only to the process; the service writes nothing to disk.
USER node
ENV PORT=3000
# A V8 young generation of 8 MB semi-spaces (V8's default grows them to 16 MB): short scavenges, and
# few enough that a request's objects die young instead of filling the old generation under load
# (bench/README.md, "Memory"). In NODE_OPTIONS so that a command override (docker-compose.yml) keeps it.
ENV NODE_OPTIONS=--max-semi-space-size=8
EXPOSE 3000
# No curl in the slim image: node's own fetch. /healthz is liveness only (the process answers);
# /readyz tells whether Postgres, Redis, migrations and the permission view are in order.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Migrations: `node dist/src/cli/migrate.js` (npm run migrate needs tsx, a dev dependency).
CMD ["node", "--enable-source-maps", "dist/src/main.js"]
