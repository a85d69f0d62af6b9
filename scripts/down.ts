/**
 * `bun run down`: stops exactly the processes a `bun run up` started (from the same state folder),
 * by the pids recorded in <state>/stack.pids, each checked to still be the process that was started
 * (pid and start time) before it is signalled. Nothing is looked up or killed by name.
 */
import { parseStackArgs, UsageError, USAGE } from "./lib/cli";
import { liveParts, pidFilePath, readStackRecord, removeStackRecord, stopRecordedStack } from "./lib/pidfile";

async function main(): Promise<number> {
  let stateDir: string;
  try {
    ({ stateDir } = parseStackArgs(process.argv.slice(2)));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    if (error.message) console.error(`down: ${error.message}\n`);
    console.error(USAGE);
    return error.message ? 2 : 0;
  }
  const record = readStackRecord(stateDir);
  if (!record) {
    console.log(`down: no stack recorded in ${pidFilePath(stateDir)}; nothing to stop.`);
    return 0;
  }
  const live = liveParts(record);
  if (!live.supervisor && live.processes.length === 0) {
    console.log("down: none of the recorded processes is running any more.");
    removeStackRecord(stateDir);
    return 0;
  }
  await stopRecordedStack(record, (line) => console.log(`down: ${line}`));
  removeStackRecord(stateDir);
  console.log("down: stopped.");
  return 0;
}

process.exit(await main());
