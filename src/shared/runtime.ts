/// <reference types="bun-types" />
/// <reference types="deno" />
// Runtime edge: the one place the library touches the process (environment,
// signals, exit, host facts). Uses node:process and node:os, which Node, Bun
// and Deno all provide. The core (queue, worker, SQL) never imports this file.
// The Bun and Deno globals are typed by bun-types and @types/deno (types only).
import os from "node:os";
import process from "node:process";

/** The runtime globals: typed as Bun's and Deno's own, and absent on Node. */
const runtimes: { Bun?: typeof Bun; Deno?: typeof Deno } = globalThis;

export function env(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === "" ? undefined : value;
}

export function argv(): string[] {
  return process.argv.slice(2);
}

export function exit(code: number): never {
  process.exit(code);
}

export function writeOut(text: string): void {
  process.stdout.write(text);
}

export function writeErr(text: string): void {
  process.stderr.write(text);
}

/** Facts stored on a worker's row, for operators. */
export function processMeta(): Record<string, unknown> {
  const { Bun, Deno } = runtimes;
  const runtime =
    Deno ? `deno ${Deno.version.deno}`
    : Bun ? `bun ${Bun.version}`
    : `node ${process.versions.node}`;
  return { host: os.hostname(), pid: process.pid, runtime };
}

/**
 * Calls onFirst on the first SIGINT or SIGTERM and onSecond on any later one.
 * One listener per signal for the whole run: on Deno a listener added from
 * inside a handler fires for the signal being handled.
 */
export function onStopSignals(onFirst: (signal: string) => void, onSecond: (signal: string) => void): () => void {
  let count = 0;
  const handle = (signal: NodeJS.Signals) => (++count === 1 ? onFirst(signal) : onSecond(signal));
  process.on("SIGINT", handle);
  process.on("SIGTERM", handle);
  return () => {
    process.off("SIGINT", handle);
    process.off("SIGTERM", handle);
  };
}
