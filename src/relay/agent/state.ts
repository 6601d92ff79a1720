/** The relay's small persistent state (`state.json` in DECKHAND_STATE_DIR), written atomically. */
import fs from "node:fs";
import path from "node:path";

export interface RelayState {
  /** The OpenCode session of this run, reused when the relay restarts. */
  sessionId?: string;
  /** Highest command seq applied (prompt, abort, shutdown): a command at or below it is never applied again. */
  lastAppliedSeq: number;
  /** Highest prompt seq handed to OpenCode, and when. */
  deliveredSeq: number;
  deliveredAt: number;
  /** Highest prompt seq for which `deckhand.agent_idle` was emitted. */
  idleEmittedSeq: number;
  /** Pid whose exit was already reported with `deckhand.opencode_exited`. */
  exitedPid?: number;
}

export const INITIAL_STATE: RelayState = { lastAppliedSeq: 0, deliveredSeq: 0, deliveredAt: 0, idleEmittedSeq: 0 };

/**
 * The state a relay restarted after an idle suspension starts from (pure). Inputs after the run's last finished turn
 * (`deliveredInputSeq`) were never worked on to the end: one that reached the old relay in the moment it was being
 * stopped was handed to an OpenCode that is gone. They are applied again; null when nothing needs to change.
 */
export function replayAfterSuspension(state: Partial<RelayState>, deliveredInputSeq: number): RelayState | null {
  const s = { ...INITIAL_STATE, ...state };
  const to = Math.max(0, Math.floor(deliveredInputSeq));
  if (s.lastAppliedSeq <= to && s.deliveredSeq <= to && s.idleEmittedSeq <= to) return null;
  return { ...s, lastAppliedSeq: Math.min(s.lastAppliedSeq, to), deliveredSeq: Math.min(s.deliveredSeq, to), idleEmittedSeq: Math.min(s.idleEmittedSeq, to) };
}

export class StateStore {
  readonly file: string;
  value: RelayState;

  constructor(dir: string) {
    fs.mkdirSync(dir, { recursive: true });
    this.file = path.join(dir, "state.json");
    this.value = { ...INITIAL_STATE, ...readJson(this.file) };
  }

  update(patch: Partial<RelayState>): void {
    this.value = { ...this.value, ...patch };
    const tmp = this.file + ".tmp";
    const fd = fs.openSync(tmp, "w");
    try {
      fs.writeSync(fd, JSON.stringify(this.value) + "\n");
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
  }
}

function readJson(file: string): Partial<RelayState> {
  try {
    const v = JSON.parse(fs.readFileSync(file, "utf8"));
    return v && typeof v === "object" ? v : {};
  } catch {
    return {};
  }
}

/**
 * Makes sure only one relay uses `dir`: two would hand out the same seqs. `relay.pid` holds the owner's pid; a
 * dead (or zombie) owner, or a pid now used by something that is not a relay, is taken over.
 */
export function takeRelayLock(dir: string, isAlive: (pid: number) => boolean): void {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "relay.pid");
  let owner: number | undefined;
  try {
    owner = Number.parseInt(fs.readFileSync(file, "utf8"), 10);
  } catch {
    /* no lock yet */
  }
  if (owner && owner !== process.pid && isAlive(owner) && looksLikeRelay(owner)) {
    throw new Error(`another relay (pid ${owner}) is using ${dir}`);
  }
  fs.writeFileSync(file, `${process.pid}\n`);
}

function looksLikeRelay(pid: number): boolean {
  try {
    return /node/.test(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8"));
  } catch {
    return true; // no /proc: assume the worst
  }
}
