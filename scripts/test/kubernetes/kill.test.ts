/**
 * What deploy/k8s/ declares, run in containers (support/container-stack.ts), its pods killed under a
 * stream of checkouts (support/container-kill-rounds.ts): each pod in turn, its container's process
 * SIGKILLed and restarted as the kubelet restarts it; the stock service's Redis pod and one of its
 * pods created anew, as on the loss of a node with network storage; and the order service's Redis
 * with its data claim lost, rebuilt from the service log.
 */
import { killRounds } from "../support/container-kill-rounds";

killRounds("crash", "order", { recreated: "stock" });
