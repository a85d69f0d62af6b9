/**
 * Containers that crash: each container's main process SIGKILLed in turn under a stream of checkouts,
 * and Docker's restart policy bringing it back (support/container-kill-rounds.ts). The wiped Redis is
 * the stock service's.
 */
import { killRounds } from "../support/container-kill-rounds";

killRounds("crash", "stock");
