/**
 * Saves of one file become as few deploys as the cluster can take, without waiting for nothing: per key (a
 * file), a value runs at once when nothing runs for that key; values arriving while it runs are coalesced,
 * and the last of them runs once the current run ends (a key never runs twice at once). "Save All" of many
 * files starts one run per file at once; saving one file again and again while its deploy is under way
 * deploys it twice, not once per save.
 *
 * `delayMs > 0` adds a trailing debounce instead: a value runs once `delayMs` pass without another for that key.
 */
export class Coalescer<T> {
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly latest = new Map<string, T>();
  private readonly running = new Set<string>();
  private readonly waiters: Array<() => void> = [];

  constructor(
    private readonly delayMs: number,
    private readonly run: (key: string, value: T) => Promise<void>,
  ) {}

  push(key: string, value: T): void {
    this.latest.set(key, value);
    if (this.delayMs <= 0) {
      // The running one picks the value up when it ends; otherwise it runs now.
      if (!this.running.has(key)) void this.fire(key);
      return;
    }
    const timer = this.timers.get(key);
    if (timer) clearTimeout(timer);
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        void this.fire(key);
      }, this.delayMs),
    );
  }

  /** Number of keys waiting or running. */
  get pending(): number {
    return new Set([...this.timers.keys(), ...this.running, ...this.latest.keys()]).size;
  }

  /** Resolves once nothing waits or runs. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  dispose(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.latest.clear();
    this.wake();
  }

  private async fire(key: string): Promise<void> {
    if (this.running.has(key)) return; // the running one picks the value up when it ends
    while (this.latest.has(key) && !this.timers.has(key)) {
      const value = this.latest.get(key) as T;
      this.latest.delete(key);
      this.running.add(key);
      try {
        await this.run(key, value);
      } catch {
        // run() reports its own failures; one failure must not stop later saves
      } finally {
        this.running.delete(key);
      }
    }
    this.wake();
  }

  private wake(): void {
    if (this.pending !== 0) return;
    for (const resolve of this.waiters.splice(0)) resolve();
  }
}
