/** How the stack (and tests) run nginx: in the foreground, every runtime file in one folder. */
import { join } from "node:path";

/**
 * The command line that runs nginx with `confPath`, its pid and temp files in `runtimeDir` (the
 * config's `runtimeDir`, see gateway/render.ts). Works as root and as any other user.
 */
export function nginxCommand(nginx: string, runtimeDir: string, confPath = join(runtimeDir, "nginx.conf")): string[] {
  // -e: the error log used before the config is read (the compiled-in one may not be writable);
  // -p: relative paths resolve in the runtime folder; daemon off: the supervisor owns the process.
  return [nginx, "-e", "stderr", "-p", `${runtimeDir}/`, "-c", confPath, "-g", "daemon off;"];
}
