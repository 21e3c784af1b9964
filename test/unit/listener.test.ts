import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Listener, type ListenerOptions } from "../../src/worker/listener.ts";

// Listener (src/worker/listener.ts) over a stand-in connection, on vitest's fake timers
// (it keeps its own timers, outside the worker's clock).
describe("Listener", () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  function listener(notifyControl: () => Promise<void>) {
    const ended: number[] = [];
    const heard: unknown[] = [];
    const deliver = new Map<string, (text: string) => void>();
    const sql = {
      listen: async (channel: string, fn: (text: string) => void, onlisten: () => void) => (deliver.set(channel, fn), onlisten()),
      end: async ({ timeout }: { timeout: number }) => void ended.push(timeout),
    };
    const options: ListenerOptions = {
      db: { schema: "s", dedicated: () => sql as never, notifyControl },
      workerId: "w",
      healthIntervalMs: 60_000,
      healthTimeoutMs: 5000,
      onEnqueued: (wake) => void heard.push(wake),
      onControl: (message) => void heard.push(message),
      onUp: () => {},
      onDown: () => {},
    };
    return { l: new Listener(options), ended, heard, deliver };
  }

  it("a stop while a health check waits for its ping ends the check at once and leaves no timer", async () => {
    const { l, ended } = listener(async () => {});
    await l.start();
    let checked: boolean | undefined;
    void l.checkHealth().then((ok) => (checked = ok));
    // (the ping was sent: the check waits for it to come back)
    await vi.advanceTimersByTimeAsync(0);
    await l.stop(2500);
    await vi.advanceTimersByTimeAsync(0);
    expect(checked).toBe(true);
    expect(ended).toEqual([2.5]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("a stop while the ping itself gets no answer ends the check at once and leaves no timer", async () => {
    const { l } = listener(() => new Promise<never>(() => {}));
    await l.start();
    let checked: boolean | undefined;
    void l.checkHealth().then((ok) => (checked = ok));
    await vi.advanceTimersByTimeAsync(0);
    await l.stop(1000);
    await vi.advanceTimersByTimeAsync(0);
    expect(checked).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("what the connection still delivers once the listener stopped is not acted on", async () => {
    const { l, heard, deliver } = listener(async () => {});
    await l.start();
    const stopping = l.stop(0);
    for (const fn of deliver.values()) fn(JSON.stringify({ schema: "s", type: "roster", queues: ["q"] }));
    await stopping;
    expect(deliver.size).toBe(2);
    expect(heard).toEqual([]);
  });
});
