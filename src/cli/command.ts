// CLI edge: what a command is.
import type { Flags } from "./args.ts";

export interface Command {
  usage: string;
  summary: string;
  flags: Flags;
  run(input: { values: Record<string, string | boolean | undefined>; positionals: string[] }): Promise<number>;
}
