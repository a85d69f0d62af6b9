# A stand-in for oven/bun, for machines that cannot pull it: Debian (DEBIAN_IMAGE, built with
# debootstrap from Debian packages) and the bun binary the host runs, where oven/bun keeps it.
# Built by scripts/lib/containers.ts from a folder that holds `bun`.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY bun /usr/local/bin/bun
RUN ln -s bun /usr/local/bin/bunx && bun --version
CMD ["bun", "repl"]
