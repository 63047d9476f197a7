// One call log shared by a set of fakes, with failure injection: every call
// a fake makes goes through record(), which logs it and throws if a test
// asked for that call (the Nth call of port.op) to fail. Tests derive the list
// of "steps" of an operation from the log of a successful run, so a step added
// to the code later is covered without editing the test.

export interface Call {
  /** Which fake: "netlink", "ipam", "delegate", "endpoints", "node". */
  port: string;
  op: string;
  /** 1-based: the how-manieth call of port.op since the last reset. */
  nth: number;
  args: unknown[];
}

interface Fault {
  port: string;
  op: string;
  nth: number;
  error: () => Error;
}

export class CallLog {
  readonly calls: Call[] = [];
  #counts = new Map<string, number>();
  #faults: Fault[] = [];

  /** Logs a call; throws the injected error if this is the call a test chose to fail. */
  record(port: string, op: string, args: unknown[]): void {
    const k = `${port}.${op}`;
    const nth = (this.#counts.get(k) ?? 0) + 1;
    this.#counts.set(k, nth);
    this.calls.push({ port, op, nth, args: structuredClone(args) });
    const i = this.#faults.findIndex((f) => f.port === port && f.op === op && f.nth === nth);
    if (i >= 0) {
      const [fault] = this.#faults.splice(i, 1);
      throw fault!.error();
    }
  }

  /** Makes the nth call (counted from the last reset) of port.op throw. */
  failAt(port: string, op: string, nth: number, error: () => Error): void {
    this.#faults.push({ port, op, nth, error });
  }

  /** Faults that never fired (a test that injects one expects it to fire). */
  pendingFaults(): string[] {
    return this.#faults.map((f) => `${f.port}.${f.op}#${f.nth}`);
  }

  /** Starts counting (and logging) afresh; injected faults stay. */
  reset(): void {
    this.calls.length = 0;
    this.#counts.clear();
  }
}
