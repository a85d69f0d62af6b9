# One image for every service replica (compose.yaml). The service is chosen by the command:
#   bun order/src/main.ts | bun stock/src/main.ts | bun payment/src/main.ts
FROM oven/bun:1
WORKDIR /app

# The workspace's manifests first, so the dependency layer is rebuilt only when they change.
COPY package.json bun.lock bunfig.toml ./
COPY common/package.json common/
COPY order/package.json order/
COPY stock/package.json stock/
COPY payment/package.json payment/
RUN bun install --frozen-lockfile --production

COPY tsconfig.json ./
COPY common common
COPY order order
COPY stock stock
COPY payment payment

# The service log; compose bind-mounts the repository's logging/ here, which Redis recovery reads.
ENV LOG_DIR=/app/logging
RUN mkdir -p /app/logging
CMD ["bun", "--eval", "console.error('choose a service: bun <order|stock|payment>/src/main.ts'); process.exit(2)"]
