/**
 * Today's spending per person and in total, for DAILY_BUDGET_USD, without two SUM queries per model call: sums
 * read from the database are kept briefly (read again in the background once older than `ttlMs`, waited for once
 * older than `maxStaleMs`), and this process's own records are added the moment their response ends. Other
 * processes' spending shows within `ttlMs`. Bounded: one day's keys, at most `maxKeys` people.
 */
export interface DailySpendOptions {
  /** Micro-dollars spent on `day` by `person` (null: by everyone). */
  read(day: string, person: string | null): Promise<number>;
  ttlMs?: number;
  maxStaleMs?: number;
  maxKeys?: number;
  now?(): number;
}

interface Sum {
  micros: number;
  at: number;
  loading: Promise<void> | null;
  /** Added locally while a read was under way (that read may not include them). */
  addedDuringRead: number;
}

const TOTAL = "\u0000total";

export class DailySpend {
  private day = "";
  private readonly sums = new Map<string, Sum>();
  private readonly ttlMs: number;
  private readonly maxStaleMs: number;
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(private readonly opts: DailySpendOptions) {
    this.ttlMs = opts.ttlMs ?? 2000;
    this.maxStaleMs = opts.maxStaleMs ?? 10_000;
    this.maxKeys = opts.maxKeys ?? 10_000;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Micro-dollars spent on `day` by `person`, or by everyone when `person` is null. */
  async get(day: string, person: string | null): Promise<number> {
    this.roll(day);
    const key = person ?? TOTAL;
    let s = this.sums.get(key);
    if (!s) {
      if (this.sums.size >= this.maxKeys) this.sums.delete(this.sums.keys().next().value!);
      s = { micros: 0, at: -Infinity, loading: null, addedDuringRead: 0 };
      this.sums.set(key, s);
    }
    const age = this.now() - s.at;
    if (age > this.ttlMs) {
      const p = this.refresh(day, person, s);
      if (age > this.maxStaleMs) await p;
      else p.catch(() => {});
    }
    return s.micros;
  }

  /** This process's own spending, counted at once. */
  add(day: string, person: string | null, micros: number): void {
    this.roll(day);
    for (const key of person ? [person, TOTAL] : [TOTAL]) {
      const s = this.sums.get(key);
      if (!s) continue;
      s.micros += micros;
      if (s.loading) s.addedDuringRead += micros;
    }
  }

  private roll(day: string): void {
    if (day !== this.day) {
      this.day = day;
      this.sums.clear();
    }
  }

  private refresh(day: string, person: string | null, s: Sum): Promise<void> {
    if (s.loading) return s.loading;
    s.addedDuringRead = 0;
    s.loading = this.opts
      .read(day, person)
      .then((micros) => {
        // What was added during the read is not in it (records are written after they are counted).
        s.micros = micros + s.addedDuringRead;
        s.at = this.now();
      })
      .finally(() => {
        s.loading = null;
      });
    return s.loading;
  }
}
