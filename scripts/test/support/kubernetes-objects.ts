/** deploy/k8s/ as its tests read it: its objects, found by kind and name, and their one container each. */
import { expect } from "bun:test";
import {
  isService,
  isWorkload,
  readManifests,
  type Container,
  type KubeObject,
  type Workload,
} from "../../lib/kubernetes";
import { kubernetesTopology } from "../../../deploy/deployments";

export const { objects, missingFiles } = readManifests();
export const t = kubernetesTopology();
export const GATEWAY = "gateway";
/** The images compose.yaml builds, by the name the manifests use (their tags are the deployer's). */
export const IMAGES = { service: "checkout-service", redis: "checkout-redis", gateway: "checkout-gateway" } as const;

export function find<T extends KubeObject>(kind: string, name: string): T {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`deploy/k8s/ has no ${kind} ${name}`);
  return found as T;
}
export const workloads = objects.filter(isWorkload);
export const services = objects.filter(isService);
export const containerOf = (w: Workload): Container => {
  expect({ name: w.metadata.name, containers: w.spec.template.spec.containers.length }).toEqual({
    name: w.metadata.name,
    containers: 1,
  });
  return w.spec.template.spec.containers[0]!;
};
export const imageName = (c: Container) => c.image.replace(/:[^:/]+$/, "");
export const envOf = (c: Container) =>
  Object.fromEntries((c.env ?? []).filter((v) => v.value !== undefined).map((v) => [v.name, v.value!]));
