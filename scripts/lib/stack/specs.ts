/**
 * What a stack runs, from the topology: for each process its command, its environment and its health
 * check. The supervisor starts and restarts processes from these specs and knows nothing else of them.
 */
import { isAbsolute, join } from "node:path";
import { mkdirSync, writeFileSync } from "node:fs";
import { REPO_ROOT, SERVICES, type ServiceName } from "../../../common/src/config";
import { PUBLIC_PREFIX } from "../../../gateway/paths";
import { renderGatewayConfig } from "../../../gateway/render";
import { httpOk, redisPing } from "../health";
import { nginxCommand } from "../nginx";
import { pathFor, type Programs } from "../prerequisites";
import { gatewayOptions } from "../../../gateway/options";
import {
  processes as topologyProcesses,
  redisEnv,
  redisName,
  serviceEnv,
  LOCAL_HOSTS,
  LOOPBACK,
  ORDER_ENV_NAMES,
  SECRET_ENV_NAMES,
  SERVICE_ENV_NAMES,
  type ProcessRole,
  type Topology,
} from "../../../deploy/topology";
import type { StackOptions } from "./api";

/** Services, nginx: start-up takes well under a second; this much means something is wrong. */
export const SERVICE_HEALTH_TIMEOUT_MS = 60_000;
/** A Redis opens its port only after replaying its service's log, which grows with the data. */
export const REDIS_HEALTH_TIMEOUT_MS = 180_000;

export type ProcessSpec = {
  name: string;
  role: ProcessRole;
  service?: ServiceName;
  port: number;
  url?: string;
  command: string[];
  env: Record<string, string>;
  healthy: () => Promise<boolean>;
  /** What the health check asks, for error messages. */
  healthDescription: string;
  healthTimeoutMs: number;
};

/** A service's Redis data folder (its data, and the pid files of its redis-server and log writer). */
export function redisDataDir(stateDir: string, service: ServiceName): string {
  return join(stateDir, redisName(service));
}

/** Every process of the topology, in start order. */
export function buildProcessSpecs(
  t: Topology,
  programs: Programs,
  options: StackOptions & { stateDir: string; logDir: string },
  internalSecret: string,
  gatewayUrl: string,
): ProcessSpec[] {
  const inherited = { ...process.env } as Record<string, string>;
  // The topology owns these, and a crash point is set per process by tests: a value left in the
  // caller's shell must not leak into a replica. Tuning knobs (REDIS_POOL_SIZE, ...) do pass through.
  for (const name of [
    ...SERVICE_ENV_NAMES,
    ...ORDER_ENV_NAMES,
    "FAULT_POINT",
    "FAULT_POINT_ON_SIGNAL",
    "FAULT_DIR",
    "LOG_DIR",
    "REDIS_DIR",
    "REDIS_BIND",
    "REDIS_SOCKET",
    ...SECRET_ENV_NAMES,
  ]) {
    delete inherited[name];
  }
  inherited.PATH = pathFor(programs, join(options.stateDir, "bin"));
  // Where a crash point records that it fired (faults.ts): this stack's own, kept across restarts.
  inherited.FAULT_DIR = options.stateDir;
  const perProcess = (name: string) => options.processEnv?.[name] ?? {};
  const nginxDir = join(options.stateDir, "nginx");

  return topologyProcesses(t).map(({ name, role, service, index, port }): ProcessSpec => {
    if (role === "redis" && service) {
      return {
        name,
        role,
        service,
        port,
        command: [programs.bash, join(REPO_ROOT, "start_redis_with_recovery.sh"), service],
        env: {
          ...inherited,
          ...redisEnv(t, service, {
            bind: LOOPBACK,
            dataDir: redisDataDir(options.stateDir, service),
            logDir: options.logDir,
          }),
          ...perProcess(name),
        },
        healthy: () => redisPing(port),
        healthDescription: `PING on port ${port}`,
        healthTimeoutMs: options.healthTimeoutMs ?? REDIS_HEALTH_TIMEOUT_MS,
      };
    }
    if (role === "service" && service && index) {
      const url = `http://${LOOPBACK}:${port}`;
      const entry = options.entrypoints?.[service] ?? join(service, "src", "main.ts");
      return {
        name,
        role,
        service,
        port,
        url,
        command: [programs.bun, isAbsolute(entry) ? entry : join(REPO_ROOT, entry)],
        env: {
          ...inherited,
          ...serviceEnv(t, service, index, {
            hosts: LOCAL_HOSTS,
            bindAddress: LOOPBACK,
            secret: { value: internalSecret },
          }),
          ...options.env,
          ...perProcess(name),
        },
        healthy: () => httpOk(`${url}/health`),
        healthDescription: `GET ${url}/health`,
        healthTimeoutMs: options.healthTimeoutMs ?? SERVICE_HEALTH_TIMEOUT_MS,
      };
    }
    const confPath = join(nginxDir, "nginx.conf");
    mkdirSync(nginxDir, { recursive: true });
    writeFileSync(
      confPath,
      renderGatewayConfig({
        listenPort: port,
        listenAddress: LOOPBACK,
        ...gatewayOptions(t, LOCAL_HOSTS),
        runtimeDir: nginxDir,
        staticRoot: join(REPO_ROOT, "gateway", "public"),
      }),
    );
    const healthUrls = SERVICES.map((s) => `${gatewayUrl}/${PUBLIC_PREFIX[s]}/health`);
    return {
      name,
      role,
      port,
      url: gatewayUrl,
      command: nginxCommand(programs.nginx, nginxDir, confPath),
      env: { ...inherited, ...perProcess(name) },
      healthy: async () => (await Promise.all(healthUrls.map((u) => httpOk(u)))).every(Boolean),
      healthDescription: `GET ${healthUrls.join(", ")}`,
      healthTimeoutMs: options.healthTimeoutMs ?? SERVICE_HEALTH_TIMEOUT_MS,
    };
  });
}

/** Start order, tier by tier: a tier starts once the one before it is healthy. */
export function startTiers(specs: readonly ProcessSpec[]): string[][] {
  const namesOf = (predicate: (s: ProcessSpec) => boolean) => specs.filter(predicate).map((s) => s.name);
  // Order calls stock and payment, so it comes after them; the gateway's health check needs all three.
  return [
    namesOf((s) => s.role === "redis"),
    namesOf((s) => s.role === "service" && s.service !== "order"),
    namesOf((s) => s.role === "service" && s.service === "order"),
    namesOf((s) => s.role === "gateway"),
  ];
}
