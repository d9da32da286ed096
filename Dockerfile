# syntax=docker/dockerfile:1

# Build: full dependency tree, src/ transpiled to dist/ (`npm run build`, scripts/build.mjs).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig*.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build

# Runtime: production dependencies, compiled code and the SQL migrations only.
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0 \
    DATA_DIR=/var/lib/modelplane \
    NODE_OPTIONS=--enable-source-maps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# Read at run time from <root>/drizzle (src/platform/db/migrate.ts) when MIGRATE_ON_START is on.
COPY drizzle ./drizzle
# Embedded state (PGlite, objects, vault key) goes here when the real parts are not configured;
# the code and dependencies stay root-owned and read-only to the process.
RUN mkdir -p /var/lib/modelplane && chown node:node /var/lib/modelplane
USER node
EXPOSE 8080
# Slim has no curl: ask /healthz with node's own fetch.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/server.js"]
