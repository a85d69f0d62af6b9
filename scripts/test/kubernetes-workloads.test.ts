/**
 * What deploy/k8s/ runs, checked without a cluster against the code: each service's pods, their
 * environment against common/src/config.ts and deploy/topology.ts, probes against the routes,
 * resources, disruption budgets and spreads, each Redis with its claims, and the gateway's
 * configuration against its renderer. kubernetes-manifests.test.ts checks the objects themselves.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { loadConfig, METRICS_PORT_SHIFT, SERVICES } from "../../common/src/config";
import { HEALTH_PATH } from "../../common/src/service";
import { renderGatewayConfig } from "../../gateway/render";
import { containerPort, selects, type KubeObject, type Labels, type Service, type Workload } from "../lib/kubernetes";
import {
  COMPOSE_LOG_DIR,
  COMPOSE_REDIS_BIND,
  COMPOSE_REDIS_DIR,
  KUBERNETES_CLAIMS,
  KUBERNETES_GATEWAY_CONFIG,
  KUBERNETES_SECRET,
  kubernetesPodsName,
  kubernetesServiceEnv,
  kubernetesServiceName,
} from "../../deploy/deployments";
import { kubernetesGatewayOptions } from "../../gateway/options";
import { OPTIONAL_SERVICE_ENV_NAMES, redisEnv, redisName, replicaPort } from "../../deploy/topology";
import { containerOf, envOf, find, GATEWAY, imageName, IMAGES, t, workloads } from "./support/kubernetes-objects";

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

  test(
    "the real config module reads that environment as the topology, " +
      "and nothing it reads is left unset but the deliberate defaults",
    () => {
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
    },
  );

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

  test(
    "its Redis's claims hold the data and the service log, where the start script and its log writer " +
      "look for them; the service pods mount no claim",
    () => {
      const mounts = Object.fromEntries((redisContainer.volumeMounts ?? []).map((m) => [m.mountPath, m.name]));
      const templates = (redis.spec.volumeClaimTemplates ?? []).map((c) => c.metadata.name);
      expect(templates.sort()).toEqual(Object.values(KUBERNETES_CLAIMS).sort());
      expect(mounts[COMPOSE_REDIS_DIR]).toBe(KUBERNETES_CLAIMS.redisData);
      expect(mounts[COMPOSE_LOG_DIR]).toBe(KUBERNETES_CLAIMS.log);
      // The log writer beside Redis writes the log; the service's pods keep no file, so run on any node.
      expect(pod.volumes?.filter((v) => v.persistentVolumeClaim !== undefined) ?? []).toEqual([]);
      expect(container.volumeMounts?.find((m) => m.mountPath === COMPOSE_LOG_DIR)).toBeUndefined();
    },
  );

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
