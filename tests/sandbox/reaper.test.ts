/** The reaper's decision for one sandbox, as a pure function. */
import { describe, expect, it } from "vitest";
import { OWNER_LABEL, RUN_LABEL, type SandboxInfo } from "../../src/sandbox/provider.ts";
import { judgeSandbox } from "../../src/sandbox/reaper.ts";

const sb = (over: Partial<SandboxInfo> = {}): SandboxInfo => ({ id: "sb1", labels: { [OWNER_LABEL]: "1", [RUN_LABEL]: "run1" }, state: "running", ...over });
const run = (status: string, sandboxId: string | null = "sb1") => ({ id: "run1", status, sandboxId }) as Parameters<typeof judgeSandbox>[1];

describe("judgeSandbox", () => {
  it("kills sandboxes of finished, unknown or missing runs", () => {
    for (const status of ["closed", "failed", "cancelled"]) expect(judgeSandbox(sb(), run(status))).toEqual({ action: "kill", reason: `its run is ${status}` });
    expect(judgeSandbox(sb(), null)).toEqual({ action: "kill", reason: "its run run1 is unknown" });
    expect(judgeSandbox(sb({ labels: { [OWNER_LABEL]: "1" } }), null)).toEqual({ action: "kill", reason: "it carries no run id" });
  });

  it("kills a sandbox left over from an earlier attempt of a live run", () => {
    expect(judgeSandbox(sb({ id: "old" }), run("running", "sb1"))).toMatchObject({ action: "kill" });
  });

  it("extends live runs' running sandboxes and keeps paused or not-yet-recorded ones", () => {
    for (const status of ["provisioning", "running", "idle"]) expect(judgeSandbox(sb(), run(status))).toEqual({ action: "extend" });
    expect(judgeSandbox(sb({ state: "paused" }), run("idle"))).toEqual({ action: "keep" });
    // provisioning: the new sandbox is recorded on the run only after create() returns
    expect(judgeSandbox(sb({ id: "new" }), run("provisioning", null))).toEqual({ action: "extend" });
    expect(judgeSandbox(sb(), run("queued", null))).toEqual({ action: "keep" });
  });
});
