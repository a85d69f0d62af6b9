/**
 * compose.yaml's images: the gateway's published port and committed config, and each Dockerfile's base
 * image, held to the base images compose:up provides (scripts/lib/containers.ts).
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { REPO_ROOT } from "../../common/src/config";
import { renderGatewayConfig } from "../../gateway/render";
import { composeGatewayOptions } from "../../gateway/options";
import { BASE_IMAGES } from "../lib/containers";
import { container, t, type ComposeService } from "./support/compose-file";

/** `FROM`'s base image argument of a Dockerfile, and that argument's default. */
async function dockerfile(path: string): Promise<string> {
  return Bun.file(join(REPO_ROOT, path)).text();
}
function argDefault(text: string, arg: string): string | undefined {
  return new RegExp(`^ARG ${arg}=(\\S+)$`, "m").exec(text)?.[1];
}
/** compose.yaml's build argument `\${ARG:-default}`: the environment may name a stand-in, else the default. */
function composeArg(service: ComposeService, arg: string): string | undefined {
  const build = service.build;
  const value = typeof build === "object" ? build.args?.[arg] : undefined;
  return value === undefined ? undefined : /^\$\{(\w+):-(.+)\}$/.exec(value)?.slice(1).join("=");
}

describe("compose.yaml runs the local stack's topology", () => {
  test("the gateway publishes port 8000 on the host's loopback and runs the committed config", async () => {
    const gateway = container("gateway");
    expect(t.ports.gateway).toBe(8000);
    expect((gateway.ports ?? []).map(String)).toEqual([
      `127.0.0.1:\${CHECKOUT_GATEWAY_PORT:-${t.ports.gateway}}:${t.ports.gateway}`,
    ]);
    expect(gateway.build).toMatchObject({ context: "gateway" });
    expect(await dockerfile("gateway/Dockerfile")).toMatch(/^COPY nginx\.compose\.conf \/etc\/nginx\/nginx\.conf$/m);
  });

  test(
    "every Dockerfile's base image is a build argument whose default is the real image, as " +
      "compose.yaml and compose:up have it",
    async () => {
      const image = (arg: string) => BASE_IMAGES.find((b) => b.arg === arg)!.image;
      const uses: Array<[path: string, service: string, args: string[]]> = [
        ["Dockerfile", "stock-1", ["BUN_IMAGE"]],
        ["redis/Dockerfile", "redis-stock", ["BUN_IMAGE", "REDIS_IMAGE"]],
        ["gateway/Dockerfile", "gateway", ["NGINX_IMAGE"]],
      ];
      for (const [path, service, args] of uses) {
        const text = await dockerfile(path);
        for (const arg of args) {
          expect({ path, arg, default: argDefault(text, arg) }).toEqual({ path, arg, default: image(arg) });
          expect({ path, arg, compose: composeArg(container(service), arg) }).toEqual({
            path,
            arg,
            compose: `${arg}=${image(arg)}`,
          });
        }
        // Every stage starts from one of them; nothing else is pulled.
        for (const from of text.matchAll(/^FROM (\S+)/gm))
          expect({ path, from: from[1] }).toEqual({ path, from: expect.stringMatching(/^\$\{\w+_IMAGE\}$/) });
      }
    },
  );

  test("gateway/nginx.compose.conf is exactly the render for compose's replicas (regenerate: bun gateway/render.ts)", async () => {
    const committed = await Bun.file(join(REPO_ROOT, "gateway", "nginx.compose.conf")).text();
    expect(committed).toBe(renderGatewayConfig(composeGatewayOptions()));
  });

  test("the Redis image has redis-server, bun, common/, redis/ and the start script", async () => {
    const text = await dockerfile("redis/Dockerfile");
    expect(text).toMatch(/^FROM \$\{REDIS_IMAGE\}$/m);
    expect(text).toMatch(/^COPY --from=\S+ \/usr\/local\/bin\/bun /m);
    for (const path of ["common", "redis", "start_redis_with_recovery.sh"])
      expect(text).toMatch(new RegExp(`^COPY ${path} `, "m"));
  });
});
