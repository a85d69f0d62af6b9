/**
 * What the gateway's configuration is rendered from (render.ts), and those options for each
 * deployment: the local stack's (scripts/lib/stack.ts), compose's and Kubernetes' (deploy/), each
 * read off the topology (deploy/topology.ts).
 */
import type { Balancing, ServiceName } from "../common/src/config";
import { composeTopology, KUBERNETES_HOSTS, kubernetesPodsName, kubernetesTopology } from "../deploy/deployments";
import { COMPOSE_HOSTS, gatewayUpstreams, type Hosts, type Topology } from "../deploy/topology";

export type GatewayConfigOptions = {
  /** The port clients connect to. */
  listenPort: number;
  /** The address to listen on; omitted: every interface (inside a container). The local stack passes 127.0.0.1. */
  listenAddress?: string;
  /** `host:port` of every replica of each service. */
  upstreams: Readonly<Record<ServiceName, readonly string[]>>;
  /**
   * A folder for nginx's pid file and temp folders. Omitted: nginx's compiled-in paths (right in the
   * nginx image; not writable by a non-root user on a developer machine).
   */
  runtimeDir?: string;
  /** Default "auto" (one worker per core). */
  workerProcesses?: number | "auto";
  /** The folder holding gateway/public's files (the pages below). Default: where the gateway's image keeps them. */
  staticRoot?: string;
  /** How requests are spread over a service's replicas; default active-standby. */
  balancing?: Balancing;
};

/** Where gateway/Dockerfile copies gateway/public. */
export const IMAGE_STATIC_ROOT = "/usr/share/checkout/public";

/** The gateway's configuration for a topology (where it listens aside). */
export function gatewayOptions(t: Topology, hosts: Hosts): Pick<GatewayConfigOptions, "upstreams" | "balancing"> {
  return { upstreams: gatewayUpstreams(t, hosts), balancing: t.balancing };
}

/** compose's gateway, in the gateway's image. */
export function composeGatewayOptions(): GatewayConfigOptions {
  const t = composeTopology();
  return { listenPort: t.ports.gateway, ...gatewayOptions(t, COMPOSE_HOSTS), staticRoot: IMAGE_STATIC_ROOT };
}

/** Kubernetes' gateway: its upstreams are the headless Services, whose names resolve to every ready pod. */
export function kubernetesGatewayOptions(): GatewayConfigOptions {
  const t = kubernetesTopology();
  return {
    listenPort: t.ports.gateway,
    ...gatewayOptions(t, { ...KUBERNETES_HOSTS, replica: kubernetesPodsName }),
    staticRoot: IMAGE_STATIC_ROOT,
  };
}
