// Waiting for a condition in integration tests: polls `cond` until it holds,
// or throws naming what it waited for. Every wait is bounded.
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 8000, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
