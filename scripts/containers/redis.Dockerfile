# A stand-in for the redis:7 image, for machines that cannot pull it: Debian's redis-server (7.0) and
# redis-cli, on Debian (DEBIAN_IMAGE, built with debootstrap). Built by scripts/lib/containers.ts.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/*
CMD ["redis-server", "--protected-mode", "no"]
