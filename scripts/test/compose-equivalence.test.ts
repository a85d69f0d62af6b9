/**
 * compose.yaml is held to the topology the local stack runs (deploy/topology.ts): the same
 * processes, the same environment, the same ports; compose-images.test.ts holds its images and the
 * gateway config. scripts/test/containers/ runs it.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_STEP_RECORD_RETENTION_S, loadConfig, SERVICES, type ServiceName } from "../../common/src/config";
import {
  COMPOSE_LOG_DIR,
  COMPOSE_PLACEMENT,
  COMPOSE_SECRET_FILE,
  COMPOSE_SECRET_MAKER,
  COMPOSE_REDIS_BIND,
  COMPOSE_REDIS_DIR,
} from "../../deploy/deployments";
import {
  processes,
  redisEnv,
  redisName,
  replicaIndexes,
  replicaName,
  serviceEnv,
  OPTIONAL_SERVICE_ENV_NAMES,
  ORDER_ENV_NAMES,
  SERVICE_ENV_NAMES,
  SHARED_SETTING_ENV_NAMES,
} from "../../deploy/topology";
import { compose, container, t, type ComposeService } from "./support/compose-file";

const expected = processes(t);
/** The one-shot container that makes the internal secret before any replica starts. */
const SECRET_MAKER = COMPOSE_SECRET_MAKER;

/**
 * A replica's environment with its secret file's path pointing at a file on this machine, so that the
 * config module can read it as the replica would read the one compose mounts.
 */
const secretHere = join(mkdtempSync(join(tmpdir(), "compose-secret-")), "secret");
writeFileSync(secretHere, "0".repeat(64));
const withSecretHere = (env: Record<string, string>) => ({ ...env, INTERNAL_SECRET_FILE: secretHere });

/** compose accepts a map or a list of K=V; values may be YAML numbers. */
function environment(service: ComposeService): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v ?? "")]));
}

function command(service: ComposeService): string[] {
  const c = service.command ?? [];
  return Array.isArray(c) ? c : c.split(/\s+/);
}

/** Every container shares one log volume, mounted where the services write and Redis recovery reads. */
const LOG_VOLUME = `\${CHECKOUT_LOG_DIR:-logs}:${COMPOSE_LOG_DIR}`;

function dependsOn(service: ComposeService): string[] {
  const d = service.depends_on ?? [];
  return Array.isArray(d) ? d : Object.keys(d);
}

describe("compose.yaml runs the local stack's topology", () => {
  test("the same processes: three Redises, two replicas of each service, the gateway", () => {
    expect(Object.keys(compose.services).sort()).toEqual([...expected.map((p) => p.name), SECRET_MAKER].sort());
  });

  test("every container restarts when it dies and has a health check", () => {
    for (const [name, service] of Object.entries(compose.services)) {
      if (name === SECRET_MAKER) continue;
      expect({ name, restart: service.restart }).toEqual({ name, restart: "always" });
      expect({ name, healthcheck: Boolean(service.healthcheck?.test) }).toEqual({ name, healthcheck: true });
    }
  });

  test.each([...SERVICES])(
    "redis-%s starts through start_redis_with_recovery.sh with the stack's environment",
    (service) => {
      const redis = container(redisName(service));
      const cmd = command(redis);
      expect(cmd.some((arg) => arg.endsWith("start_redis_with_recovery.sh"))).toBe(true);
      expect(cmd.at(-1)).toBe(service);
      expect(environment(redis)).toEqual(
        redisEnv(t, service, { bind: COMPOSE_REDIS_BIND, dataDir: COMPOSE_REDIS_DIR, logDir: COMPOSE_LOG_DIR }),
      );
      expect(redis.build).toMatchObject({ context: ".", dockerfile: "redis/Dockerfile" });
      const volumes = redis.volumes ?? [];
      // Its data survives the container in a named volume; its log writer appends to and its recovery
      // reads the service log in the log volume.
      const dataVolume = volumes.find((v) => v.endsWith(`:${COMPOSE_REDIS_DIR}`))?.split(":")[0];
      expect(dataVolume).toBeDefined();
      expect(Object.keys(compose.volumes ?? {})).toContain(dataVolume!);
      expect(volumes).toContain(LOG_VOLUME);
    },
  );

  const replicas = SERVICES.flatMap((service) => replicaIndexes(t, service).map((index) => ({ service, index })));
  /** The shared settings' defaults, as the config module has them. */
  const SHARED_SETTING_DEFAULTS: Record<(typeof SHARED_SETTING_ENV_NAMES)[number], string> = {
    STEP_RECORD_RETENTION_S: String(DEFAULT_STEP_RECORD_RETENTION_S),
  };

  test.each(replicas)("$service-$index gets exactly the environment the stack would give it", ({ service, index }) => {
    const replica = container(replicaName(service, index));
    const { ...env } = environment(replica);
    // Shared settings come from the shell that runs compose, as `bun run up` passes them from its own.
    for (const name of SHARED_SETTING_ENV_NAMES) {
      expect({ name, value: env[name] }).toEqual({ name, value: `\${${name}:-${SHARED_SETTING_DEFAULTS[name]}}` });
      delete env[name];
    }
    expect(env).toEqual(serviceEnv(t, service, index, COMPOSE_PLACEMENT));
    const names: readonly string[] =
      service === "order" ? [...SERVICE_ENV_NAMES, ...ORDER_ENV_NAMES] : SERVICE_ENV_NAMES;
    for (const name of names) expect(env[name]).toBeDefined();
  });

  /** A replica's environment as compose gives it, with every `${NAME:-default}` taken at its default. */
  const interpolated = (env: Record<string, string>) =>
    Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.replace(/^\$\{\w+:-(.*)\}$/, "$1")]));

  test.each(replicas)(
    "$service-$index sets every variable the config module reads, but the deliberate defaults",
    ({ service, index }) => {
      const env = withSecretHere(interpolated(environment(container(replicaName(service, index)))));
      const read = new Set<string>();
      // The config module's schema is private; a proxy records which variables it asks for.
      const recording = new Proxy(env, {
        get(target, key) {
          if (typeof key === "string") read.add(key);
          return Reflect.get(target, key);
        },
      });
      loadConfig(service, recording);
      // The secret comes as its file; the variable that would hold it instead is left unset.
      const notForThisService: readonly string[] = [...(service === "order" ? [] : ORDER_ENV_NAMES), "INTERNAL_SECRET"];
      const unset = [...read].filter(
        (name) =>
          !(name in env) &&
          !(OPTIONAL_SERVICE_ENV_NAMES as readonly string[]).includes(name) &&
          !notForThisService.includes(name),
      );
      expect(unset).toEqual([]);
    },
  );

  test.each(replicas)(
    "$service-$index: the real config module reads that environment as the stack's topology",
    ({ service, index }) => {
      const config = loadConfig(
        service,
        withSecretHere(interpolated(environment(container(replicaName(service, index))))),
      );
      expect(config.port).toBe(t.ports.serviceBase[service] + index);
      expect(config.stepRecordRetentionMs).toBe(DEFAULT_STEP_RECORD_RETENTION_S * 1000);
      expect(config.redis).toEqual({ host: redisName(service), port: t.ports.redis[service] });
      expect(config.instanceId).toBe(replicaName(service, index));
      if (service === "order") {
        expect(config.stockUrls).toEqual(
          replicaIndexes(t, "stock").map((i) => `http://stock-${i}:${t.ports.serviceBase.stock + i}`),
        );
        expect(config.paymentUrls).toEqual(
          replicaIndexes(t, "payment").map((i) => `http://payment-${i}:${t.ports.serviceBase.payment + i}`),
        );
      }
    },
  );

  test.each(replicas)(
    "$service-$index runs its service from the root Dockerfile, mounts no log folder, waits for its peers",
    ({ service, index }) => {
      const replica = container(replicaName(service, index));
      expect(replica.build).toMatchObject({ context: "." });
      expect(command(replica)).toEqual(["bun", `${service}/src/main.ts`]);
      expect((replica.volumes ?? []).filter((v) => v.endsWith(`:${COMPOSE_LOG_DIR}`))).toEqual([]);
      const needs: string[] = [redisName(service), SECRET_MAKER];
      if (service === "order") {
        for (const peer of ["stock", "payment"] as ServiceName[])
          needs.push(...replicaIndexes(t, peer).map((i) => replicaName(peer, i)));
      }
      expect(dependsOn(replica).sort()).toEqual(needs.sort());
    },
  );

  test("the internal secret is made once, in a volume that only the service replicas mount, where their config reads it", () => {
    const maker = container(SECRET_MAKER);
    const secretDir = COMPOSE_SECRET_FILE.slice(0, COMPOSE_SECRET_FILE.lastIndexOf("/"));
    expect(maker.volumes).toEqual([`${SECRET_MAKER}:${secretDir}`]);
    expect(command(maker).join(" ")).toContain(COMPOSE_SECRET_FILE);
    expect(Object.keys(compose.volumes ?? {})).toContain(SECRET_MAKER);
    for (const [name, service] of Object.entries(compose.services)) {
      if (name === SECRET_MAKER) continue;
      const mounted = (service.volumes ?? []).some((v) => v.startsWith(`${SECRET_MAKER}:`));
      const isReplica = expected.some((p) => p.name === name && p.role === "service");
      expect({
        name,
        mounted,
        readOnly: mounted ? service.volumes!.includes(`${SECRET_MAKER}:${secretDir}:ro`) : false,
      }).toEqual({
        name,
        mounted: isReplica,
        readOnly: isReplica,
      });
    }
  });

  test("the log volume is a named volume unless CHECKOUT_LOG_DIR names a host folder", () => {
    expect(Object.keys(compose.volumes ?? {})).toContain("logs");
  });
});
