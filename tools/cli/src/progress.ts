// A progress bar on stderr (bytes, rate, ETA), drawn only when stderr is a terminal.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "--:--";
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const mm = String(Math.floor((t % 3600) / 60)).padStart(2, "0");
  const ss = String(t % 60).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export class Progress {
  private done = 0;
  private readonly started = Date.now();
  private drawn = 0;
  private readonly enabled: boolean;

  /** `total` undefined: unknown (stdin). Draws nothing unless `enabled` and stderr is a TTY. */
  constructor(
    private readonly label: string,
    private total: number | undefined,
    enabled = true,
  ) {
    this.enabled = enabled && process.stderr.isTTY === true;
  }

  /** Sets the bytes done so far (may go back, e.g. after a rollback). */
  set(done: number): void {
    this.done = done;
    if (this.enabled && Date.now() - this.drawn >= 100) this.draw();
  }

  add(n: number): void {
    this.set(this.done + n);
  }

  setTotal(total: number): void {
    this.total = total;
  }

  /** Bytes per second since the start. */
  rate(): number {
    return this.done / Math.max((Date.now() - this.started) / 1000, 0.001);
  }

  /** Draws the final state and moves to the next line. */
  finish(): void {
    if (!this.enabled) return;
    this.draw();
    process.stderr.write("\n");
  }

  /** Clears the bar (before printing a message). */
  clear(): void {
    if (this.enabled) process.stderr.write("\r\x1b[K");
  }

  private draw(): void {
    this.drawn = Date.now();
    const rate = this.rate();
    let line: string;
    if (this.total !== undefined && this.total > 0) {
      const f = Math.min(1, this.done / this.total);
      const width = 24;
      const full = Math.round(f * width);
      const bar = "=".repeat(Math.max(0, full - 1)) + (full > 0 ? (f < 1 ? ">" : "=") : "") + " ".repeat(width - full);
      const eta = rate > 0 ? (this.total - this.done) / rate : Infinity;
      line = `${this.label} [${bar}] ${(f * 100).toFixed(0).padStart(3)}% ${formatBytes(this.done)}/${formatBytes(this.total)} ${formatBytes(rate)}/s ETA ${formatDuration(eta)}`;
    } else {
      line = `${this.label} ${formatBytes(this.done)} ${formatBytes(rate)}/s`;
    }
    process.stderr.write(`\r\x1b[K${line}`);
  }
}
