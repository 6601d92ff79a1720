# Deckhand container image: a thin wrapper around the same install steps CI runs (.ci/system-packages.sh, npm ci).
# Build: docker build -t deckhand .   Run: see compose.yaml and the README's "Run with Docker".

# ── 1. dependencies ───────────────────────────────────────────────────────────────────────────────────────────
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only (tsx runs the TypeScript sources; there is no build step).
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ── 2. runtime ───────────────────────────────────────────────────────────────────────────────────────────────
FROM node:20-bookworm-slim AS runtime
WORKDIR /app
COPY .ci/system-packages.sh /tmp/system-packages.sh
# bubblewrap, passt and git, as in CI; chromium is only for the browser tests.
RUN DECKHAND_BROWSER_TESTS= /tmp/system-packages.sh && rm /tmp/system-packages.sh
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
COPY docker/entrypoint.sh ./docker/entrypoint.sh
# Non-root: the `node` user (uid 1000) owns only the data directory.
RUN mkdir -p /data && chown node:node /data
USER node
ENV NODE_ENV=production DATA_DIR=/data HOST=0.0.0.0 PORT=3000 LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["serve"]
