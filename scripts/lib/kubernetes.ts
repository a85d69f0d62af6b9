/**
 * deploy/k8s/ as data: the kustomization's objects read without a cluster (its resources, and the
 * ConfigMaps and Secrets its generators make), and their translation into a compose file that runs
 * what they declare on the container engine here (`bun run k8s:test`).
 *
 * The translation keeps what the manifests say about each pod: its image, command, environment,
 * ports, volume mounts and readiness probe (as the container's health check). A Deployment of n
 * replicas becomes n containers `<name>-1` … `<name>-n`; a StatefulSet of one, the container `<name>`
 * (host name `<name>-0`, as its pod). Each Service whose selector matches a pod becomes a network
 * alias of its container, so that a Service's name resolves to its pods, as a headless Service's
 * does; each volume claim, a named volume (a StatefulSet's claims named as Kubernetes names them,
 * `<claim>-<statefulset>-0`); each Secret and ConfigMap, a read-only folder with one file per key.
 *
 * What it does not do: a Service's own balancing (a name resolves to every pod, ready or not, and a
 * client picks among them), readiness taking a pod out of a Service, node placement, NetworkPolicies,
 * resource limits. scripts/test/kubernetes-workloads.test.ts checks those parts of the manifests.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { KUBERNETES_DIR } from "../../deploy/deployments";

/** The few fields of the Kubernetes API that this file and the manifest tests read. */
export type Probe = {
  httpGet?: { path: string; port: number | string };
  tcpSocket?: { port: number | string };
  exec?: { command: string[] };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  failureThreshold?: number;
};
export type EnvVar = {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
};
export type Container = {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
};
export type Volume = {
  name: string;
  secret?: { secretName: string };
  configMap?: { name: string };
  persistentVolumeClaim?: { claimName: string };
};
export type PodSpec = {
  containers: Container[];
  volumes?: Volume[];
  terminationGracePeriodSeconds?: number;
  topologySpreadConstraints?: { topologyKey: string; labelSelector?: { matchLabels?: Record<string, string> } }[];
};
export type Labels = Record<string, string>;
export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Labels };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
};
export type Workload = KubeObject & {
  kind: "Deployment" | "StatefulSet";
  spec: {
    replicas?: number;
    serviceName?: string;
    selector: { matchLabels: Labels };
    template: { metadata: { labels: Labels }; spec: PodSpec };
    volumeClaimTemplates?: { metadata: { name: string } }[];
  };
};
export type Service = KubeObject & {
  kind: "Service";
  spec: {
    clusterIP?: string;
    selector: Labels;
    ports: { name?: string; port: number; targetPort?: number | string }[];
  };
};

type Kustomization = {
  resources: string[];
  configMapGenerator?: { name: string; files: string[] }[];
  secretGenerator?: { name: string; files: string[] }[];
};

/** The file of a generator's entry `key=path` (or `path`, whose key is its file name). */
function generatorFile(entry: string): { key: string; path: string } {
  const at = entry.indexOf("=");
  return at < 0
    ? { key: entry.split("/").at(-1)!, path: entry }
    : { key: entry.slice(0, at), path: entry.slice(at + 1) };
}

export type Manifests = {
  objects: KubeObject[];
  /** Generated objects' files that are not there (the internal secret is never committed). */
  missingFiles: string[];
};

/**
 * Every object `kubectl apply -k dir` would apply, as written (a generated ConfigMap keeps its
 * name, without the suffix kustomize adds). A generator file that is missing is listed, and its key
 * left empty.
 */
export function readManifests(dir: string = KUBERNETES_DIR): Manifests {
  const kustomization = Bun.YAML.parse(readFileSync(join(dir, "kustomization.yaml"), "utf8")) as Kustomization;
  const objects: KubeObject[] = [];
  for (const resource of kustomization.resources) {
    const parsed = Bun.YAML.parse(readFileSync(join(dir, resource), "utf8")) as KubeObject | KubeObject[];
    objects.push(...(Array.isArray(parsed) ? parsed : [parsed]).filter(Boolean));
  }
  const missingFiles: string[] = [];
  const generated = (kind: "ConfigMap" | "Secret", name: string, files: string[]): KubeObject => {
    const data: Record<string, string> = {};
    for (const { key, path } of files.map(generatorFile)) {
      const full = join(dir, path);
      if (existsSync(full)) data[key] = readFileSync(full, "utf8");
      else missingFiles.push(full);
      data[key] ??= "";
    }
    // A Secret's data is base64 in the API; stringData is the same, in clear.
    return { apiVersion: "v1", kind, metadata: { name }, ...(kind === "Secret" ? { stringData: data } : { data }) };
  };
  for (const g of kustomization.configMapGenerator ?? []) objects.push(generated("ConfigMap", g.name, g.files));
  for (const g of kustomization.secretGenerator ?? []) objects.push(generated("Secret", g.name, g.files));
  return { objects, missingFiles };
}

export const isWorkload = (o: KubeObject): o is Workload => o.kind === "Deployment" || o.kind === "StatefulSet";
export const isService = (o: KubeObject): o is Service => o.kind === "Service";

/** Whether every label a selector asks for is on the pod. */
export function selects(selector: Labels, labels: Labels): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

/** The pods of a workload, as the translation names them. */
export function podNames(w: Workload): string[] {
  if (w.kind === "StatefulSet") return [w.metadata.name];
  return Array.from({ length: w.spec.replicas ?? 1 }, (_, i) => `${w.metadata.name}-${i + 1}`);
}

/** The name Kubernetes gives the claim of a StatefulSet's claim template for its pod 0. */
export const claimName = (template: string, statefulSet: string): string => `${template}-${statefulSet}-0`;

/** A container port by name or number. */
export function containerPort(container: Container, port: number | string): number | undefined {
  return typeof port === "number"
    ? container.ports?.find((p) => p.containerPort === port)?.containerPort
    : container.ports?.find((p) => p.name === port)?.containerPort;
}

export type ComposeOptions = {
  /** The images' tag here, in place of the manifests' own. */
  imageTag: string;
  /** A host folder holding one folder per Secret and per ConfigMap, one file per key (writeGeneratedFiles). */
  filesDir: string;
  /** Claims kept in host folders instead of volumes (a shared log folder a test reads), by claim name. */
  claimFolders?: Record<string, string>;
  /** Container name → ports to publish on 127.0.0.1 (host port → container port). */
  publish?: Record<string, Array<[host: number, container: number]>>;
};

/**
 * Health checks are `docker exec`s, each about 0.1 s of the engine's CPU: no more often than
 * compose.yaml's, and with its generous timeout (starting a check takes seconds on a loaded machine).
 */
const HEALTH_INTERVAL_S = 10;
const HEALTH_TIMEOUT_S = 10;

/** A readiness probe as a compose health check (the images have bash, not curl). */
function healthCheck(
  container: Container,
  probe: Probe | undefined,
  startPeriodS: number,
): Record<string, unknown> | undefined {
  if (!probe) return undefined;
  let test: string[];
  if (probe.httpGet) {
    const port = containerPort(container, probe.httpGet.port);
    const request = `GET ${probe.httpGet.path} HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n`;
    test = [
      "CMD",
      "bash",
      "-c",
      `exec 3<>/dev/tcp/127.0.0.1/${port} && printf '${request}' >&3 && head -n 1 <&3 | grep -q ' 200 '`,
    ];
  } else if (probe.tcpSocket) {
    test = ["CMD", "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${containerPort(container, probe.tcpSocket.port)}`];
  } else if (probe.exec) {
    test = ["CMD", ...probe.exec.command];
  } else {
    throw new Error(`${container.name}: a probe of a kind the translation does not know`);
  }
  return {
    test,
    interval: `${HEALTH_INTERVAL_S}s`,
    timeout: `${HEALTH_TIMEOUT_S}s`,
    retries: probe.failureThreshold ?? 3,
    start_period: `${startPeriodS}s`,
  };
}

/** How long a pod may take to start before its failing checks count: its startup probe's budget. */
function startPeriod(container: Container): number {
  const startup = container.startupProbe;
  if (startup) return (startup.periodSeconds ?? 10) * (startup.failureThreshold ?? 3);
  return container.readinessProbe?.initialDelaySeconds ?? 30;
}

/** The environment of one pod: values as written, the downward API's pod name resolved. */
function environment(container: Container, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of container.env ?? []) {
    if (v.value !== undefined) env[v.name] = v.value;
    else if (v.valueFrom?.fieldRef?.fieldPath === "metadata.name") env[v.name] = podName;
    else throw new Error(`${container.name}: ${v.name} comes from somewhere the translation does not know`);
  }
  return env;
}

/** The image named by the manifest, with this machine's tag. */
const retagged = (image: string, tag: string) => `${image.replace(/:[^:/]+$/, "")}:${tag}`;

/** The compose file (as an object; JSON is YAML) that runs the manifests' workloads here. */
export function composeOf(
  objects: readonly KubeObject[],
  options: ComposeOptions,
): { services: Record<string, unknown>; volumes: Record<string, object> } {
  const services: Record<string, unknown> = {};
  const volumes: Record<string, object> = {};
  const kubeServices = objects.filter(isService);
  for (const w of objects.filter(isWorkload)) {
    const pod = w.spec.template.spec;
    if (pod.containers.length !== 1) throw new Error(`${w.metadata.name}: the translation runs pods of one container`);
    const container = pod.containers[0]!;
    const claims = new Map<string, string>();
    for (const t of w.spec.volumeClaimTemplates ?? [])
      claims.set(t.metadata.name, claimName(t.metadata.name, w.metadata.name));
    const mounts = (container.volumeMounts ?? []).map((mount) => {
      const fromClaim = claims.get(mount.name);
      const volume = pod.volumes?.find((v) => v.name === mount.name);
      const readOnly = mount.readOnly ? ":ro" : "";
      const claim = fromClaim ?? volume?.persistentVolumeClaim?.claimName;
      if (claim) return `${options.claimFolders?.[claim] ?? claim}:${mount.mountPath}${readOnly}`;
      if (volume?.secret) return `${join(options.filesDir, volume.secret.secretName)}:${mount.mountPath}:ro`;
      if (volume?.configMap) return `${join(options.filesDir, volume.configMap.name)}:${mount.mountPath}:ro`;
      throw new Error(`${w.metadata.name}: volume ${mount.name} is of a kind the translation does not know`);
    });
    for (const mount of mounts) {
      const source = mount.split(":")[0]!;
      if (!source.startsWith("/")) volumes[source] = {};
    }
    const aliases = kubeServices
      .filter((s) => selects(s.spec.selector, w.spec.template.metadata.labels))
      .map((s) => s.metadata.name);
    for (const name of podNames(w)) {
      const hostname = w.kind === "StatefulSet" ? `${name}-0` : name;
      services[name] = {
        image: retagged(container.image, options.imageTag),
        ...(container.command ? { command: [...container.command, ...(container.args ?? [])] } : {}),
        hostname,
        environment: environment(container, hostname),
        volumes: mounts,
        networks: { default: { aliases } },
        // A pod's containers are restarted when they die (restartPolicy Always).
        restart: "always",
        init: true,
        stop_grace_period: `${pod.terminationGracePeriodSeconds ?? 30}s`,
        healthcheck: healthCheck(container, container.readinessProbe, startPeriod(container)),
        ...(options.publish?.[name]
          ? { ports: options.publish[name]!.map(([host, inside]) => `127.0.0.1:${host}:${inside}`) }
          : {}),
      };
    }
  }
  return { services, volumes };
}

/** Writes each Secret's and ConfigMap's keys as files under `filesDir/<name>/`, as Kubernetes mounts them. */
export function writeGeneratedFiles(
  objects: readonly KubeObject[],
  filesDir: string,
  write: (path: string, text: string) => void,
): void {
  for (const o of objects) {
    const data = o.kind === "Secret" ? o.stringData : o.kind === "ConfigMap" ? o.data : undefined;
    for (const [key, text] of Object.entries(data ?? {})) write(join(filesDir, o.metadata.name, key), text);
  }
}
