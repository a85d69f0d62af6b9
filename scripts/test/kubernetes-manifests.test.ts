/**
 * deploy/k8s/ checked without a cluster: every object against the Kubernetes API's schemas
 * (kubernetes-models), `kubectl kustomize` rendering it where kubectl is here, and the manifests
 * against each other, as compose-equivalence.test.ts does for compose.yaml: selectors against
 * labels, Service ports against container ports, and the NetworkPolicies against who must reach
 * whom. kubernetes-workloads.test.ts checks what the pods run against the code.
 */
import { describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { SERVICES, type ServiceName } from "../../common/src/config";
import {
  containerPort,
  isWorkload,
  selects,
  type KubeObject,
  type Labels,
  type Service,
  type Workload,
} from "../lib/kubernetes";
import { KUBERNETES_DIR } from "../../deploy/deployments";
import { redisName } from "../../deploy/topology";
import {
  containerOf,
  find,
  GATEWAY,
  missingFiles,
  objects,
  services,
  t,
  workloads,
} from "./support/kubernetes-objects";

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
  /**
   * Who reaches each workload's port: the gateway anyone, order the gateway, stock and payment the
   * gateway and order, a Redis its service.
   */
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
