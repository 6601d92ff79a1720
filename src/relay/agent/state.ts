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
