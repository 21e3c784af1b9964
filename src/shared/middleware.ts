/**
 * Middleware: functions that wrap a call, each given the call's context and
 * `next`, which runs the rest of the chain. The first added is the outermost,
 * as in Hono and Koa. What one returns is what its caller gets; what one
 * throws is what its caller sees.
 */
export type Middleware<C, R> = (context: C, next: () => Promise<R>) => Promise<unknown>;

/**
 * Runs `last` inside the middleware, in order, and resolves with what the
 * outermost returns. With none, calls `last` directly.
 */
export function runWith<C, R>(middleware: readonly Middleware<C, R>[], context: C, last: () => Promise<R>): Promise<unknown> {
  if (middleware.length === 0) return last();
  const at = (i: number): Promise<unknown> => {
    if (i === middleware.length) return last();
    let called = false;
    return middleware[i]!(context, () => {
      if (called) return Promise.reject(new Error("next() called twice by one middleware"));
      called = true;
      return at(i + 1) as Promise<R>;
    });
  };
  return at(0);
}
