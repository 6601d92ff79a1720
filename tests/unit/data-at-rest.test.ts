/** Data at rest: DATA_DIR is created 0700 and the embedded database's files are 0600 (dirs 0700). */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, tmpDir, type TestServer } from "../helpers/harness.ts";

describe("data at rest (embedded PGlite)", () => {
  let srv: TestServer;
  const dataDir = path.join(tmpDir(), "data");

  beforeAll(async () => {
    srv = await startTestServer({ database: "pglite", dataDir, noReconciler: true, env: { API_TOKEN: "" } });
  }, 600_000);
  afterAll(async () => srv?.close());

  it("DATA_DIR is 0700; every database file is 0600 and every folder 0700; the generated API token 0600", () => {
    expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
    const loose: string[] = [];
    const walk = (p: string) => {
      const st = fs.lstatSync(p);
      if (st.isDirectory()) {
        if ((st.mode & 0o777) !== 0o700) loose.push(`${p} ${(st.mode & 0o777).toString(8)}`);
        for (const e of fs.readdirSync(p)) walk(path.join(p, e));
      } else if (st.isFile() && (st.mode & 0o077) !== 0) loose.push(`${p} ${(st.mode & 0o777).toString(8)}`);
    };
    walk(path.join(dataDir, "pglite"));
    expect(fs.readdirSync(path.join(dataDir, "pglite")).length).toBeGreaterThan(3);
    expect(loose).toEqual([]);
    expect(fs.statSync(path.join(dataDir, "api-token")).mode & 0o777).toBe(0o600);
  });
});
