/**
 * Prometheus scrape configurations, rendered from the topology (deploy/topology.ts): every
 * service replica's metrics port, with the internal secret as a bearer token.
 *
 *   deploy/prometheus.yml          the local stack (`bun run up`): 127.0.0.1, the secret in .state/
 *   deploy/prometheus.compose.yml  compose: the containers' names, the secret where compose mounts it
 *                                  (a Prometheus container on compose's network, with the
 *                                  internal-secret volume mounted read-only at /run/secrets/internal)
 *
 * Regenerate both with `bun deploy/prometheus.ts`; scripts/test/prometheus-config.test.ts fails if a
 * committed file drifts from its rendering.
 */
import { SERVICES } from "../common/src/config";
import { INTERNAL_SECRET_FILE } from "../scripts/lib/stack";
import {
  COMPOSE_HOSTS,
  LOCAL_HOSTS,
  metricsPort,
  replicaIndexes,
  replicaName,
  topology,
  type Hosts,
  type Topology,
} from "./topology";
import { COMPOSE_SECRET_FILE, composeTopology } from "./deployments";
import { DEFAULT_REPLICAS } from "../scripts/lib/cli";

/** How often Prometheus asks each process: the dashboard's own pace. */
export const SCRAPE_INTERVAL_S = 5;

export const PROMETHEUS_FILES = {
  local: new URL("./prometheus.yml", import.meta.url).pathname,
  compose: new URL("./prometheus.compose.yml", import.meta.url).pathname,
};

/** The scrape configuration for the replicas of `t`, found at `hosts`, authorised by the secret in `credentialsFile`. */
export function renderPrometheusConfig(t: Topology, hosts: Hosts, credentialsFile: string, what: string): string {
  const job = (service: (typeof SERVICES)[number]) => [
    `  - job_name: ${service}`,
    "    authorization:",
    "      type: Bearer",
    `      credentials_file: ${credentialsFile}`,
    "    static_configs:",
    ...replicaIndexes(t, service).flatMap((i) => [
      `      - targets: ["${hosts.replica(service, i)}:${metricsPort(t, service, i)}"]`,
      `        labels: { instance_name: ${replicaName(service, i)} }`,
    ]),
  ];
  return [
    `# Prometheus scrape configuration for ${what}. Rendered by deploy/prometheus.ts: edit that file, not this one.`,
    "global:",
    `  scrape_interval: ${SCRAPE_INTERVAL_S}s`,
    "scrape_configs:",
    ...SERVICES.flatMap(job),
    "",
  ].join("\n");
}

export const localPrometheusConfig = () =>
  // Relative to this file's folder, as Prometheus reads it: the local stack's state folder.
  renderPrometheusConfig(
    topology(DEFAULT_REPLICAS),
    LOCAL_HOSTS,
    `../.state/${INTERNAL_SECRET_FILE}`,
    "the local stack (bun run up, default ports)",
  );

export const composePrometheusConfig = () =>
  renderPrometheusConfig(composeTopology(), COMPOSE_HOSTS, COMPOSE_SECRET_FILE, "compose.yaml");

if (import.meta.main) {
  await Bun.write(PROMETHEUS_FILES.local, localPrometheusConfig());
  await Bun.write(PROMETHEUS_FILES.compose, composePrometheusConfig());
  console.log(`wrote ${PROMETHEUS_FILES.local} and ${PROMETHEUS_FILES.compose}`);
}
