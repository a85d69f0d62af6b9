/** compose.yaml as the tests that hold it to the topology read it (compose-equivalence.test.ts, compose-images.test.ts). */
import { join } from "node:path";
import { REPO_ROOT } from "../../../common/src/config";
import { composeTopology } from "../../../deploy/deployments";

export type ComposeService = {
  build?: string | { context: string; dockerfile?: string; args?: Record<string, string> };
  image?: string;
  command?: string[] | string;
  environment?: Record<string, string | number | boolean | null> | string[];
  volumes?: string[];
  ports?: (string | number)[];
  restart?: string;
  healthcheck?: { test: string[] | string };
  depends_on?: Record<string, { condition: string }> | string[];
};
export type ComposeFile = { services: Record<string, ComposeService>; volumes?: Record<string, unknown> };

/** compose.yaml, parsed. */
export const compose = Bun.YAML.parse(await Bun.file(join(REPO_ROOT, "compose.yaml")).text()) as ComposeFile;
/** The topology compose.yaml is held to. */
export const t = composeTopology();

/** compose.yaml's service `name`; the test fails if there is none. */
export function container(name: string): ComposeService {
  const service = compose.services[name];
  if (!service) throw new Error(`compose.yaml has no service ${name}`);
  return service;
}
