# A stand-in for the nginx image, for machines that cannot pull it: Debian's nginx (1.22, the one the
# local stack runs), on Debian (DEBIAN_IMAGE, built with debootstrap). Built by scripts/lib/containers.ts.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends nginx && rm -rf /var/lib/apt/lists/*
CMD ["nginx", "-g", "daemon off;"]
