# One image for every service replica (compose.yaml). The service is chosen by the command:
#   bun order/src/main.ts | bun stock/src/main.ts | bun payment/src/main.ts
#
# BUN_IMAGE: the Bun image. Where oven/bun cannot be pulled, `bun run compose:up` builds a stand-in
# from Debian packages and the host's bun (scripts/containers/) and passes its name here.
ARG BUN_IMAGE=oven/bun:1

# ---- The workspace's production dependencies ------------------------------------------------------
FROM ${BUN_IMAGE} AS dependencies
WORKDIR /app
# Only the manifests, so this stage is rebuilt only when they change. build-ca.pem is the CA bundle
# the host's bun trusts (NODE_EXTRA_CA_CERTS), copied there by compose:up when it is set: behind a
# TLS-intercepting proxy, the registry's certificate is signed by it. It is never committed, is
# absent on an ordinary Docker host (the pattern then matches nothing), and stays in this stage.
COPY package.json bun.lock bunfig.toml build-ca.pe[m] ./
COPY common/package.json common/
COPY order/package.json order/
COPY stock/package.json stock/
COPY payment/package.json payment/
RUN if [ -f build-ca.pem ]; then export NODE_EXTRA_CA_CERTS="$PWD/build-ca.pem"; fi; \
    bun install --frozen-lockfile --production && rm -f build-ca.pem

# ---- The service image ----------------------------------------------------------------------------
FROM ${BUN_IMAGE}
WORKDIR /app
COPY --from=dependencies /app ./
COPY tsconfig.json ./
COPY common common
COPY order order
COPY stock stock
COPY payment payment

# Bun caches a name's address for 30 s. A container that comes back may have another address (Docker
# hands a stopped container's address to the next one that starts), and the order service's peers
# and every service's Redis must be found there within a second, not half a minute.
ENV BUN_CONFIG_DNS_TIME_TO_LIVE_SECONDS=1
RUN mkdir -p /app/logging
CMD ["bun", "--eval", "console.error('choose a service: bun <order|stock|payment>/src/main.ts'); process.exit(2)"]
