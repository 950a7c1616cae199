# One image for the three apps; docker-compose.yml picks the entry point per service.
FROM node:20-bookworm-slim
WORKDIR /app
RUN npm install -g pnpm@10.34.8
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
COPY apps ./apps
COPY packages ./packages
COPY scripts ./scripts
COPY tsconfig.base.json tsconfig.json ./
RUN pnpm install --frozen-lockfile
ENV NODE_ENV=production
USER node
# node --import tsx, not the tsx CLI: PID 1 is then the app itself and gets docker stop's SIGTERM.
CMD ["node", "--import", "tsx", "apps/api/src/main.ts"]
