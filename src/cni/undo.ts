// ADD's undo stack: every step that changes state pushes its reversal; a
// failure runs them newest first, each one even if an earlier one threw.

export class UndoStack {
  #steps: Array<{ what: string; run: () => unknown }> = [];

  push(what: string, run: () => unknown): void {
    this.#steps.push({ what, run });
  }

  /** Runs every reversal; returns the ones that failed (for the error's details). */
  async unwind(): Promise<string[]> {
    const failed: string[] = [];
    for (const step of this.#steps.reverse()) {
      try {
        await step.run();
      } catch (err) {
        failed.push(`${step.what}: ${(err as Error).message}`);
      }
    }
    this.#steps = [];
    return failed;
  }

  /** The work is done: forget the reversals. */
  commit(): void {
    this.#steps = [];
  }
}
