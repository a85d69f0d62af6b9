/**
 * The deployments other than the local stack, in the topology's terms (topology.ts): compose.yaml
 * (two replicas of each service, in containers) and Kubernetes (deploy/k8s/).
 * scripts/test/compose-equivalence.test.ts and kubernetes-manifests.test.ts hold each to what follows.
 */
import { join } from "node:path";
import { REPO_ROOT, type ServiceName } from "../common/src/config";
import {
  COMPOSE_HOSTS,
  redisName,
  serviceEnv,
  topology,
  type Hosts,
  type ReplicaPlacement,
  type Topology,
} from "./topology";

// ---- compose (compose.yaml) -------------------------------------------------------------------

/** compose.yaml: two replicas of each service, every container on the port the local stack would use. */
export const COMPOSE_REPLICAS = 2;
export const COMPOSE_LOG_DIR = "/app/logging";
export const COMPOSE_REDIS_DIR = "/data";
/** A container must listen on its network interface, not only on its own loopback. */
export const COMPOSE_REDIS_BIND = "0.0.0.0";
/** compose's one-shot container that makes the internal secret on the first `up`, then exits. */
export const COMPOSE_SECRET_MAKER = "internal-secret";
/** Where compose mounts the internal secret it makes on the first `up` (the internal-secret service). */
export const COMPOSE_SECRET_FILE = "/run/secrets/internal/secret";

/** A service replica's placement in compose. */
export const COMPOSE_PLACEMENT: ReplicaPlacement = {
  hosts: COMPOSE_HOSTS,
  bindAddress: "0.0.0.0",
  secret: { file: COMPOSE_SECRET_FILE },
};

export function composeTopology(): Topology {
  return topology(COMPOSE_REPLICAS);
}

// ---- Kubernetes (deploy/k8s/) ------------------------------------------------------------------
//
// Each service is a Deployment of interchangeable pods behind one Service, so in the topology's terms
// every pod is "replica 1": same port, same environment, its INSTANCE_ID its pod's name. The Service
// balances round robin over the ready pods; each Redis is a StatefulSet of one pod behind a headless
// Service of its own name. scripts/test/kubernetes.test.ts holds the manifests to what follows.

export const KUBERNETES_DIR = join(REPO_ROOT, "deploy", "k8s");
/** The gateway's nginx.conf, rendered by gateway/render.ts, that the kustomization makes a ConfigMap of. */
export const KUBERNETES_GATEWAY_CONFIG = join(KUBERNETES_DIR, "gateway", "nginx.conf");
/** A Redis StatefulSet's claim templates: its data (REDIS_DIR), and the service log (LOG_DIR). */
export const KUBERNETES_CLAIMS = { redisData: "redis-data", log: "log" } as const;
/** The Secret holding the internal step credential, and the key of the credential in it. */
export const KUBERNETES_SECRET = { name: "internal-secret", key: "secret" } as const;

/** The Service of a service's pods: the name its callers use, and that of its Deployment. */
export const kubernetesServiceName = (service: ServiceName): string => service;
/**
 * The headless Service of the same pods, for the gateway: its name resolves to every ready pod,
 * which gateway/run.sh writes into nginx's upstream, so nginx itself balances and fails over per
 * request (a ClusterIP gives nginx one address, and a checkout re-sent there may meet the same pod).
 */
export const kubernetesPodsName = (service: ServiceName): string => `${service}-pods`;

export function kubernetesTopology(): Topology {
  return topology(1, 0, {}, "round-robin");
}

/** How the pods find each other: each Redis by its StatefulSet's headless Service, a service by its Service. */
export const KUBERNETES_HOSTS: Hosts = { redis: redisName, replica: kubernetesServiceName };

/** A service pod's placement: the secret mounted where compose mounts it (a service pod keeps no file). */
export const KUBERNETES_PLACEMENT: ReplicaPlacement = {
  hosts: KUBERNETES_HOSTS,
  bindAddress: "0.0.0.0",
  secret: { file: COMPOSE_SECRET_FILE },
};

/** The environment of every pod of a service; INSTANCE_ID aside, which each pod takes from its name. */
export function kubernetesServiceEnv(service: ServiceName): Record<string, string> {
  const { INSTANCE_ID: _fromThePodName, ...env } = serviceEnv(kubernetesTopology(), service, 1, KUBERNETES_PLACEMENT);
  return env;
}
