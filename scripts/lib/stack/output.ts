/** Where a stack's processes' output goes: read line by line from their pipes, to a sink. */

export type OutputSink = (line: string) => void;

/** A sink that keeps only the last lines in memory: for tests, which show them when something fails. */
export function memoryOutput(maxLines = 500): OutputSink & { lines(): string[] } {
  const lines: string[] = [];
  const sink = (line: string) => {
    lines.push(line);
    if (lines.length > maxLines) lines.splice(0, lines.length - maxLines);
  };
  return Object.assign(sink, { lines: () => [...lines] });
}

export const stdoutOutput: OutputSink = (line) => {
  process.stdout.write(`${line}\n`);
};

/** Calls `emit` with each line of `stream` until it ends, the last one even without its newline. */
export async function forEachLine(stream: ReadableStream<Uint8Array>, emit: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  try {
    for await (const chunk of stream) {
      pending += decoder.decode(chunk, { stream: true });
      for (let newline = pending.indexOf("\n"); newline >= 0; newline = pending.indexOf("\n")) {
        emit(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
      }
    }
  } catch {
    // The pipe broke because the process is gone; what it wrote before is already out.
  }
  pending += decoder.decode();
  if (pending) emit(pending);
}
