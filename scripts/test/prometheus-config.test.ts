/** deploy/prometheus*.yml: the committed files are their renderings, and they scrape exactly the metrics ports. */
import { describe, expect, test } from "bun:test";
import { SERVICES } from "../../common/src/config";
import { composePrometheusConfig, localPrometheusConfig, PROMETHEUS_FILES } from "../../deploy/prometheus";
import { DEFAULT_REPLICAS } from "../lib/cli";
import {
  COMPOSE_HOSTS,
  gatewayUpstreams,
  LOCAL_HOSTS,
  metricsPort,
  replicaIndexes,
  topology,
  type Hosts,
  type Topology,
} from "../../deploy/topology";
import { composeTopology } from "../../deploy/deployments";

type ScrapeConfig = {
  scrape_configs: Array<{
    job_name: string;
    authorization: { type: string; credentials_file: string };
    static_configs: Array<{ targets: string[] }>;
  }>;
};

const cases: Array<[name: keyof typeof PROMETHEUS_FILES, render: () => string, t: Topology, hosts: Hosts]> = [
  ["local", localPrometheusConfig, topology(DEFAULT_REPLICAS), LOCAL_HOSTS],
  ["compose", composePrometheusConfig, composeTopology(), COMPOSE_HOSTS],
];

describe.each(cases)("the %s scrape configuration", (name, render, t, hosts) => {
  test("is committed exactly as rendered (regenerate: bun deploy/prometheus.ts)", async () => {
    expect(await Bun.file(PROMETHEUS_FILES[name]).text()).toBe(render());
  });

  test("scrapes every replica's metrics port, with the internal secret, and no port the gateway proxies to", () => {
    const config = Bun.YAML.parse(render()) as ScrapeConfig;
    const targets = config.scrape_configs.flatMap((job) => job.static_configs.flatMap((s) => s.targets));
    const expected = SERVICES.flatMap((service) =>
      replicaIndexes(t, service).map((i) => `${hosts.replica(service, i)}:${metricsPort(t, service, i)}`),
    );
    expect(targets).toEqual(expected);
    for (const job of config.scrape_configs)
      expect(job.authorization).toEqual({ type: "Bearer", credentials_file: expect.stringContaining("secret") });
    const proxied = new Set(Object.values(gatewayUpstreams(t, hosts)).flat());
    expect(targets.filter((target) => proxied.has(target))).toEqual([]);
  });
});
