// Queues n no-op jobs through the system's own bulk API (untimed set-up).
export async function fill(sys, n, batch = 1000, from = 0) {
  for (let done = 0; done < n; ) {
    const size = Math.min(batch, n - done);
    await sys.enqueueBulk(Array.from({ length: size }, (_, i) => ({ i: from + done + i })));
    done += size;
  }
}
