/**
 * deploy/k8s/ checked without a cluster: every object against the Kubernetes API's schemas
 * (kubernetes-models), `kubectl kustomize` rendering it where kubectl is here, and the manifests
 * against the code, as compose-equivalence.test.ts does for compose.yaml: selectors against labels,
 * Service ports against container ports, environments against common/src/config.ts and
 * scripts/lib/topology.ts, probe paths against the routes, the gateway's configuration against its
 * renderer, and the NetworkPolicies against who must reach whom.
 */
import { describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { loadConfig, METRICS_PORT_SHIFT, SERVICES, type ServiceName } from "../../common/src/config";
import { HEALTH_PATH } from "../../common/src/service";
import { renderGatewayConfig } from "../../gateway/render";
import {
  containerPort,
  isService,
  isWorkload,
  readManifests,
  selects,
  type Container,
  type KubeObject,
  type Labels,
  type Service,
  type Workload,
} from "../lib/kubernetes";
import {
  COMPOSE_LOG_DIR,
  COMPOSE_REDIS_BIND,
  COMPOSE_REDIS_DIR,
  KUBERNETES_CLAIMS,
  KUBERNETES_DIR,
  KUBERNETES_GATEWAY_CONFIG,
  KUBERNETES_SECRET,
  kubernetesPodsName,
  kubernetesServiceEnv,
  kubernetesServiceName,
  kubernetesTopology,
} from "../../deploy/deployments";
import { kubernetesGatewayOptions } from "../../gateway/options";
import { OPTIONAL_SERVICE_ENV_NAMES, redisEnv, redisName, replicaPort } from "../../deploy/topology";

const { objects, missingFiles } = readManifests();
const t = kubernetesTopology();
const GATEWAY = "gateway";
/** The images compose.yaml builds, by the name the manifests use (their tags are the deployer's). */
const IMAGES = { service: "checkout-service", redis: "checkout-redis", gateway: "checkout-gateway" } as const;

function find<T extends KubeObject>(kind: string, name: string): T {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`deploy/k8s/ has no ${kind} ${name}`);
  return found as T;
}
const workloads = objects.filter(isWorkload);
const services = objects.filter(isService);
const containerOf = (w: Workload): Container => {
  expect({ name: w.metadata.name, containers: w.spec.template.spec.containers.length }).toEqual({
    name: w.metadata.name,
    containers: 1,
  });
  return w.spec.template.spec.containers[0]!;
};
const imageName = (c: Container) => c.image.replace(/:[^:/]+$/, "");
const envOf = (c: Container) =>
  Object.fromEntries((c.env ?? []).filter((v) => v.value !== undefined).map((v) => [v.name, v.value!]));

describe("every object is valid for the Kubernetes API", () => {
  test("the generators' files are there but the internal secret, which is never committed", () => {
    expect(missingFiles.filter((f) => basename(f) !== "internal-secret")).toEqual([]);
  });

  test.each(objects.map((o) => [`${o.kind} ${o.metadata.name}`, o] as const))(
    "%s validates against its schema",
    async (_, object) => {
      // kubernetes-models has one module per kind: <group>/<version>/<Kind> (the core group is v1).
      const module = await import(`kubernetes-models/${object.apiVersion}/${object.kind}`);
      const Model = module[object.kind] as new (data: unknown) => { validate(): void };
      expect(() => new Model(object).validate()).not.toThrow();
    },
  );

  test("the schemas catch a mistake (a port given as text)", async () => {
    const { Service: Model } = await import("kubernetes-models/v1/Service");
    const broken = structuredClone(find<Service>("Service", "order")) as unknown as {
      spec: { ports: { port: unknown }[] };
    };
    broken.spec.ports[0]!.port = "8101";
    expect(() => new Model(broken as never).validate()).toThrow(/port/);
  });

  test.skipIf(!Bun.which("kubectl"))(
    "kubectl kustomize renders the same objects, the gateway's ConfigMap under its hashed name",
    async () => {
      const copy = mkdtempSync(join(tmpdir(), "k8s-"));
      try {
        cpSync(KUBERNETES_DIR, copy, { recursive: true });
        writeFileSync(join(copy, "internal-secret"), "0".repeat(64));
        const rendered = Bun.spawnSync(["kubectl", "kustomize", copy]);
        expect(rendered.stderr.toString()).toBe("");
        const docs = Bun.YAML.parse(rendered.stdout.toString()) as KubeObject[];
        const names = (list: readonly KubeObject[]) =>
          list.map((o) => `${o.kind}/${o.metadata.name.replace(/^(gateway-nginx)-\w+$/, "$1")}`).sort();
        expect(names(docs)).toEqual(names(objects));
        const configMap = docs.find((o) => o.kind === "ConfigMap")!;
        const gateway = docs.find((o) => o.kind === "Deployment" && o.metadata.name === GATEWAY) as Workload;
        expect(gateway.spec.template.spec.volumes?.find((v) => v.configMap)?.configMap?.name).toBe(
          configMap.metadata.name,
        );
      } finally {
        rmSync(copy, { recursive: true, force: true });
      }
    },
  );
});

describe("selectors and labels", () => {
  test.each(workloads.map((w) => [w.metadata.name, w] as const))(
    "%s: its selector selects its own pods, and no other workload's",
    (_, w) => {
      expect(selects(w.spec.selector.matchLabels, w.spec.template.metadata.labels)).toBe(true);
      for (const other of workloads.filter((o) => o !== w))
        expect(selects(w.spec.selector.matchLabels, other.spec.template.metadata.labels)).toBe(false);
    },
  );

  test.each(services.map((s) => [s.metadata.name, s] as const))(
    "Service %s selects the pods of exactly one workload, and each port leads to a port of its container",
    (_, s) => {
      const selected = workloads.filter((w) => selects(s.spec.selector, w.spec.template.metadata.labels));
      expect(selected.length).toBe(1);
      const container = containerOf(selected[0]!);
      for (const port of s.spec.ports) {
        const target = containerPort(container, port.targetPort ?? port.port);
        expect({ service: s.metadata.name, port: port.port, target }).toEqual({
          service: s.metadata.name,
          port: port.port,
          target: port.port,
        });
      }
    },
  );

  test("every PodDisruptionBudget, topology spread and NetworkPolicy selects pods of a workload (but Prometheus's, from any namespace)", () => {
    const selectorsOf = (o: KubeObject): Labels[] => {
      const spec = o.spec as Record<string, any>;
      if (o.kind === "PodDisruptionBudget") return [spec.selector.matchLabels];
      if (o.kind === "NetworkPolicy")
        return [
          spec.podSelector.matchLabels,
          ...(spec.ingress ?? []).flatMap((r: any) =>
            (r.from ?? []).filter((f: any) => !f.namespaceSelector).map((f: any) => f.podSelector.matchLabels),
          ),
        ];
      if (isWorkload(o))
        return (o.spec.template.spec.topologySpreadConstraints ?? []).map((c) => c.labelSelector!.matchLabels!);
      return [];
    };
    for (const o of objects) {
      for (const selector of selectorsOf(o)) {
        const matched = workloads.filter((w) => selects(selector, w.spec.template.metadata.labels)).length;
        expect({ object: `${o.kind} ${o.metadata.name}`, selector, matched: matched > 0 }).toEqual({
          object: `${o.kind} ${o.metadata.name}`,
          selector,
          matched: true,
        });
      }
    }
  });
});

describe.each([...SERVICES])("the %s service", (service) => {
  const deployment = find<Workload>("Deployment", kubernetesServiceName(service));
  const container = containerOf(deployment);
  const pod = deployment.spec.template.spec;
  const redis = find<Workload>("StatefulSet", redisName(service));
  const redisContainer = containerOf(redis);
  const port = replicaPort(t, service, 1);

  test("its pods run the service image's service, on the topology's port", () => {
    expect(deployment.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(imageName(container)).toBe(IMAGES.service);
    expect(container.command).toEqual(["bun", `${service}/src/main.ts`]);
    expect(containerPort(container, "http")).toBe(port);
    // Where the config module serves /metrics when METRICS_PORT is not set, as here.
    expect(containerPort(container, "metrics")).toBe(port + METRICS_PORT_SHIFT);
  });

  test("its pods get exactly the topology's environment, and their instance id from their pod's name", () => {
    expect(envOf(container)).toEqual(kubernetesServiceEnv(service));
    const instance = container.env?.find((v) => v.name === "INSTANCE_ID");
    expect(instance?.valueFrom).toEqual({ fieldRef: { fieldPath: "metadata.name" } });
  });

  test("the real config module reads that environment as the topology, and nothing it reads is left unset but the deliberate defaults", () => {
    const secretHere = join(mkdtempSync(join(tmpdir(), "k8s-secret-")), "secret");
    writeFileSync(secretHere, "0".repeat(64));
    const env = { ...envOf(container), INSTANCE_ID: `${service}-7d9f-x2`, INTERNAL_SECRET_FILE: secretHere };
    const read = new Set<string>();
    const config = loadConfig(
      service,
      new Proxy(env, {
        get: (target, key) => {
          if (typeof key === "string") read.add(key);
          return Reflect.get(target, key);
        },
      }),
    );
    expect(config.port).toBe(port);
    expect(config.redis).toEqual({ host: redisName(service), port: t.ports.redis[service] });
    if (service === "order") {
      // One Service URL per peer: the Service spreads the calls over the pods.
      expect(config.stockUrls).toEqual([`http://${kubernetesServiceName("stock")}:${replicaPort(t, "stock", 1)}`]);
      expect(config.paymentUrls).toEqual([
        `http://${kubernetesServiceName("payment")}:${replicaPort(t, "payment", 1)}`,
      ]);
    }
    const notForThisService =
      service === "order" ? ["INTERNAL_SECRET"] : ["INTERNAL_SECRET", "STOCK_URLS", "PAYMENT_URLS", "PEER_BALANCING"];
    const unset = [...read].filter(
      (name) =>
        !(name in env) &&
        !(OPTIONAL_SERVICE_ENV_NAMES as readonly string[]).includes(name) &&
        !notForThisService.includes(name),
    );
    expect(unset).toEqual([]);
  });

  test("readiness and liveness ask the health route every service serves, on the service's port", () => {
    for (const probe of [container.readinessProbe, container.livenessProbe]) {
      expect(probe?.httpGet?.path).toBe(HEALTH_PATH);
      expect(containerPort(container, probe!.httpGet!.port)).toBe(port);
    }
  });

  test("requests and limits, a PodDisruptionBudget, and a spread across nodes", () => {
    for (const kind of ["requests", "limits"] as const)
      expect(Object.keys(container.resources?.[kind] ?? {}).sort()).toEqual(["cpu", "memory"]);
    const budget = find<KubeObject>("PodDisruptionBudget", deployment.metadata.name).spec as {
      minAvailable: number;
      selector: { matchLabels: Labels };
    };
    expect(selects(budget.selector.matchLabels, deployment.spec.template.metadata.labels)).toBe(true);
    expect(budget.minAvailable).toBeLessThan(deployment.spec.replicas!);
    const spread = pod.topologySpreadConstraints ?? [];
    expect(spread.map((c) => c.topologyKey)).toContain("kubernetes.io/hostname");
  });

  test("a Service for its callers and a headless one for the gateway and for scraping each pod's metrics", () => {
    const plain = find<Service>("Service", kubernetesServiceName(service));
    const headless = find<Service>("Service", kubernetesPodsName(service));
    expect(plain.spec.clusterIP).toBeUndefined();
    expect(headless.spec.clusterIP).toBe("None");
    expect(plain.spec.ports.map((p) => p.port)).toEqual([port]);
    expect(headless.spec.ports.map((p) => [p.port, containerPort(container, p.targetPort!)])).toEqual([
      [port, port],
      [port + METRICS_PORT_SHIFT, port + METRICS_PORT_SHIFT],
    ]);
  });

  test("its Redis: one pod of the Redis image, recovering through start_redis_with_recovery.sh before its port opens", () => {
    expect(redis.spec.replicas).toBe(1);
    expect(imageName(redisContainer)).toBe(IMAGES.redis);
    expect(redisContainer.command).toEqual(["./start_redis_with_recovery.sh", service]);
    expect(envOf(redisContainer)).toEqual(
      redisEnv(t, service, { bind: COMPOSE_REDIS_BIND, dataDir: COMPOSE_REDIS_DIR, logDir: COMPOSE_LOG_DIR }),
    );
    expect(containerPort(redisContainer, "redis")).toBe(t.ports.redis[service]);
    // Found by the name the service's pods are given, on the port they are given.
    const headless = find<Service>("Service", redisName(service));
    expect(headless.spec.clusterIP).toBe("None");
    expect(redis.spec.serviceName).toBe(headless.metadata.name);
    expect(headless.spec.ports.map((p) => p.port)).toEqual([t.ports.redis[service]]);
    // Until the port opens, the startup probe waits; readiness and liveness then see it.
    for (const probe of [redisContainer.startupProbe, redisContainer.readinessProbe])
      expect(containerPort(redisContainer, probe!.tcpSocket!.port)).toBe(t.ports.redis[service]);
  });

  test("its Redis's claims hold the data and the service log, where the start script and its log writer look for them; the service pods mount no claim", () => {
    const mounts = Object.fromEntries((redisContainer.volumeMounts ?? []).map((m) => [m.mountPath, m.name]));
    const templates = (redis.spec.volumeClaimTemplates ?? []).map((c) => c.metadata.name);
    expect(templates.sort()).toEqual(Object.values(KUBERNETES_CLAIMS).sort());
    expect(mounts[COMPOSE_REDIS_DIR]).toBe(KUBERNETES_CLAIMS.redisData);
    expect(mounts[COMPOSE_LOG_DIR]).toBe(KUBERNETES_CLAIMS.log);
    // The log writer beside Redis writes the log; the service's pods keep no file, so run on any node.
    expect(pod.volumes?.filter((v) => v.persistentVolumeClaim !== undefined) ?? []).toEqual([]);
    expect(container.volumeMounts?.find((m) => m.mountPath === COMPOSE_LOG_DIR)).toBeUndefined();
  });

  test("the internal secret is mounted read-only where INTERNAL_SECRET_FILE points", () => {
    const file = envOf(container).INTERNAL_SECRET_FILE!;
    const mount = container.volumeMounts?.find((m) => m.mountPath === dirname(file));
    expect(mount?.readOnly).toBe(true);
    expect(pod.volumes?.find((v) => v.name === mount!.name)?.secret?.secretName).toBe(KUBERNETES_SECRET.name);
    expect(basename(file)).toBe(KUBERNETES_SECRET.key);
  });
});

describe("the gateway", () => {
  const deployment = find<Workload>("Deployment", GATEWAY);
  const container = containerOf(deployment);

  test("deploy/k8s/gateway/nginx.conf is exactly the render for Kubernetes (regenerate: bun gateway/render.ts)", async () => {
    expect(await Bun.file(KUBERNETES_GATEWAY_CONFIG).text()).toBe(renderGatewayConfig(kubernetesGatewayOptions()));
  });

  test("its pods run the gateway image on that configuration, mounted from the ConfigMap the kustomization makes of it", () => {
    expect(imageName(container)).toBe(IMAGES.gateway);
    const configMap = find<KubeObject>("ConfigMap", "gateway-nginx");
    expect(configMap.data?.["nginx.conf"]).toBe(renderGatewayConfig(kubernetesGatewayOptions()));
    const [command, configPath] = container.command ?? [];
    expect(command).toBe("gateway-run");
    const mount = container.volumeMounts?.find((m) => configPath === `${m.mountPath}/nginx.conf`);
    expect(deployment.spec.template.spec.volumes?.find((v) => v.name === mount?.name)?.configMap?.name).toBe(
      configMap.metadata.name,
    );
  });

  test("its upstreams are the services' headless Services, on their ports, balanced round robin", () => {
    const options = kubernetesGatewayOptions();
    expect(options.balancing).toBe("round-robin");
    for (const service of SERVICES) {
      const [host, port] = options.upstreams[service][0]!.split(":");
      const headless = find<Service>("Service", host!);
      expect(headless.spec.clusterIP).toBe("None");
      expect(headless.spec.ports[0]?.port).toBe(Number(port));
      expect(
        selects(
          headless.spec.selector,
          find<Workload>("Deployment", kubernetesServiceName(service)).spec.template.metadata.labels,
        ),
      ).toBe(true);
    }
  });

  test("readiness and liveness ask the gateway's own health location, on its port; the Service leads there", () => {
    for (const probe of [container.readinessProbe, container.livenessProbe]) {
      expect(renderGatewayConfig(kubernetesGatewayOptions())).toContain(`location = ${probe?.httpGet?.path} {`);
      expect(containerPort(container, probe!.httpGet!.port)).toBe(t.ports.gateway);
    }
    expect(find<Service>("Service", GATEWAY).spec.ports.map((p) => p.port)).toEqual([t.ports.gateway]);
  });

  test("more than one pod, requests and limits, a PodDisruptionBudget, a spread across nodes", () => {
    expect(deployment.spec.replicas).toBeGreaterThanOrEqual(2);
    for (const kind of ["requests", "limits"] as const)
      expect(Object.keys(container.resources?.[kind] ?? {}).sort()).toEqual(["cpu", "memory"]);
    find<KubeObject>("PodDisruptionBudget", GATEWAY);
    expect((deployment.spec.template.spec.topologySpreadConstraints ?? []).map((c) => c.topologyKey)).toContain(
      "kubernetes.io/hostname",
    );
  });

  test("no pod but a service's mounts the internal secret", () => {
    const mounting = workloads.filter((w) =>
      (w.spec.template.spec.volumes ?? []).some((v) => v.secret?.secretName === KUBERNETES_SECRET.name),
    );
    expect(mounting.map((w) => w.metadata.name).sort()).toEqual(SERVICES.map(kubernetesServiceName).sort());
  });
});

/**
 * Whether the NetworkPolicies let a pod with `from` labels reach a pod with `to` labels on `port`:
 * a pod no policy selects takes everything; one that some policy selects takes what any of them allows.
 */
function allowed(policies: readonly KubeObject[], from: Labels, to: Labels, port: number): boolean {
  type Rule = { from?: { podSelector: { matchLabels: Labels } }[]; ports?: { port: number }[] };
  const selecting = policies.filter((p) => selects((p.spec as any).podSelector.matchLabels ?? {}, to));
  if (selecting.length === 0) return true;
  return selecting.some((p) =>
    ((p.spec as { ingress?: Rule[] }).ingress ?? []).some(
      (rule) =>
        (rule.from === undefined || rule.from.some((f) => selects(f.podSelector.matchLabels, from))) &&
        (rule.ports === undefined || rule.ports.some((p) => p.port === port)),
    ),
  );
}

describe("network policies", () => {
  const policies = objects.filter((o) => o.kind === "NetworkPolicy");
  const podLabels = (name: string) => workloads.find((w) => w.metadata.name === name)!.spec.template.metadata.labels;
  const outsider: Labels = { "app.kubernetes.io/name": "somebody-else" };
  /** Who reaches each workload's port: the gateway anyone, order the gateway, stock and payment the gateway and order, a Redis its service. */
  const reachers = (name: string): string[] => {
    if (name === GATEWAY) return ["outsider", ...workloads.map((w) => w.metadata.name)];
    if (name === "order") return [GATEWAY];
    if (name === "stock" || name === "payment") return [GATEWAY, "order"];
    return [name.replace(/^redis-/, "")];
  };
  const portOf = (w: Workload) => containerOf(w).ports![0]!.containerPort;

  test.each(workloads.map((w) => [w.metadata.name, w] as const))(
    "%s is reached only by those that must",
    (name, target) => {
      const sources = ["outsider", ...workloads.map((w) => w.metadata.name)];
      const reached = sources.filter((source) =>
        allowed(
          policies,
          source === "outsider" ? outsider : podLabels(source),
          target.spec.template.metadata.labels,
          portOf(target),
        ),
      );
      expect(reached.sort()).toEqual(reachers(name).sort());
    },
  );

  test.each(SERVICES.map((s) => [s] as const))("%s's metrics port is reached by Prometheus's pods only", (service) => {
    const target = workloads.find((w) => w.metadata.name === service)!;
    const metrics = containerPort(containerOf(target), "metrics")!;
    const prometheus: Labels = { "app.kubernetes.io/name": "prometheus" };
    const sources: [string, Labels][] = [
      ["prometheus", prometheus],
      ["outsider", outsider],
      ...workloads.map((w): [string, Labels] => [w.metadata.name, podLabels(w.metadata.name)]),
    ];
    const reached = sources.filter(([, labels]) =>
      allowed(policies, labels, target.spec.template.metadata.labels, metrics),
    );
    expect(reached.map(([name]) => name)).toEqual(["prometheus"]);
  });

  test("the evaluator itself: with no policy, everyone reaches everyone", () => {
    expect(allowed([], outsider, podLabels(redisName("stock" as ServiceName)), t.ports.redis.stock)).toBe(true);
  });
});
