# One image for walcache's programs; docker-compose.yml picks the one each service runs:
#   node dist/api.mjs | dist/cdc.mjs | dist/invalidator.mjs | dist/migrate.mjs | dist/walcache.mjs
#
# build    every dependency, dev tools included; bundles the programs (scripts/build.ts).
# deps     the production dependencies only: the root package's `dependencies` (each npm
#          package a bundle imports, esbuild among them for .ts config files; the build fails
#          on one missing there) and @walcache/config, which a .ts config imports for defineConfig.
# runtime  node, the bundles, the examples and those node_modules: no pnpm, no compiler of
#          ours, no test tools. test/ops/compose.test.ts checks these rules against this file.

FROM node:20-bookworm-slim AS pnpm
WORKDIR /app
RUN npm install -g pnpm@10.34.8

FROM pnpm AS build
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml tsconfig.base.json tsconfig.json ./
COPY apps ./apps
COPY packages ./packages
COPY scripts ./scripts
COPY examples ./examples
RUN pnpm install --frozen-lockfile
RUN node --import tsx scripts/build.ts

FROM pnpm AS deps
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
COPY packages/config/package.json ./packages/config/
RUN pnpm install --prod --frozen-lockfile

FROM node:20-bookworm-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY --from=deps /app/packages/config/node_modules ./packages/config/node_modules
COPY package.json ./
COPY packages/config/package.json ./packages/config/
COPY packages/config/src ./packages/config/src
COPY examples ./examples
COPY --from=build /app/dist ./dist
USER node
# Exec form, node itself: PID 1 is the app and gets docker stop's SIGTERM, which each app
# handles (a graceful stop within 15 s), so PID 1's default of ignoring signals never applies.
CMD ["node", "--max-semi-space-size=8", "dist/api.mjs"]
