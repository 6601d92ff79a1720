/**
 * The dashboard in a real browser (Debian's Chromium driven by playwright-core) against a real server, real
 * sandboxes, real OpenCode and the scripted model: sign in, watch a run appear and work live, steer it with a
 * follow-up the model sees, read and download the diff, stop another run, and open a run's read-only link.
 * Screenshots land in test-artifacts/web/. Without Chromium the test is skipped with the reason printed.
 */
import fs from "node:fs";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ModelHandler } from "../fakes/model-server.ts";
import { makeRepo, postgresAvailable, startTestServer, type TestServer } from "../helpers/harness.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium) console.warn(`SKIPPING browser tests: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH).`);
const ARTIFACTS = path.resolve("test-artifacts/web");
const TOKEN = "test-api-token-0123456789";

const GREETING = `export function greet(name: string): string {\n  const greeting = \`Hello, \${name}!\`;\n  return greeting;\n}\n`;

/** First prompt of the "greeting" run waits for release(); a follow-up writes a file named after it; "forever" never answers. */
function scriptedModel() {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let markSeen!: () => void;
  const seen = new Promise<void>((r) => (markSeen = r));
  const handler: ModelHandler = async (req) => {
    const last = req.userTexts.at(-1) ?? "";
    // "forever": asks which way first (the question tool), then never answers.
    if (req.userTexts[0]?.includes("forever")) return req.toolResults.length ? new Promise(() => {}) : { toolCalls: [{ name: "question", arguments: { questions: [{ question: "Which way?", header: "Way", options: [{ label: "left", description: "go left" }, { label: "right", description: "" }] }] } }] };
    if (req.lastRole === "tool") return { text: `Done: ${last}` };
    if (req.userTexts.length === 1) {
      markSeen();
      await gate;
      return { toolCalls: [{ name: "write", arguments: { filePath: "src/greeting.ts", content: GREETING } }] };
    }
    const name = `${last.replace(/[^a-z]+/gi, "-").toLowerCase().slice(0, 20)}.md`;
    return { toolCalls: [{ name: "write", arguments: { filePath: name, content: `# ${last}\n` } }] };
  };
  return { handler, release: () => release(), seen };
}

describe.skipIf(!haveChromium)("the dashboard in a browser", () => {
  let srv: TestServer;
  let browser: Browser;
  const model = scriptedModel();
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const database = (await postgresAvailable()) ? "postgres" : "pglite";
    [srv, browser] = await Promise.all([
      startTestServer({ database, repos: { demo: makeRepo({ "README.md": "# demo\n" }).bare }, handler: (r) => model.handler(r) }),
      chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
      }),
    ]);
  });
  afterAll(async () => {
    model.release();
    await browser?.close();
    await srv?.close();
  });

  it("watch a run live, steer it, read and download the diff, answer another's question and stop it, share a read-only link", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await ctx.newPage();
    page.on("dialog", (d) => void d.accept());

    // Sign in with the API token.
    await page.goto(`${srv.url}/`);
    await expect.poll(() => page.url()).toContain("/login");
    await page.getByLabel("API token").fill(TOKEN);
    await page.getByLabel("Your name").fill("Ana");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Runs" }).waitFor();
    await page.locator(".live-badge.on").waitFor();

    // A run started elsewhere appears in the open list and moves on, without a reload.
    const a = (await srv.api("POST", "/api/runs", { repo: "demo", prompt: "Add a greeting module", createdBy: "cli-user" })).body;
    const row = page.locator(`#run-${a.id}`);
    await row.waitFor({ timeout: 10_000 });
    await expect.poll(() => row.locator(".status").textContent(), { timeout: 30_000 }).toBe("working");
    expect(await row.textContent()).toContain("cli-user");
    await shot(page, "1-list-live");

    // Open it: the page follows the agent live.
    await row.getByRole("link", { name: "Add a greeting module" }).click();
    await page.locator(".live-badge.on").waitFor();
    await model.seen; // the agent is busy on the first prompt
    await page.locator("#run-head .status", { hasText: "working" }).waitFor();
    await page.locator(".live-line", { hasText: "last heartbeat" }).waitFor();

    // Steer it from the page: the same as a Slack reply.
    // (By keyboard: the labelled field, Ctrl+Enter sends.)
    await page.getByLabel("Follow-up prompt").fill("also add notes");
    await page.getByLabel("Follow-up prompt").press("Control+Enter");
    await page.locator("form.follow-up .form-status", { hasText: "Sent" }).waitFor();
    expect((await srv.deckhand.store.inputs(a.id)).at(-1)).toMatchObject({ text: "also add notes", author: "Ana", source: "web" });
    await shot(page, "2-run-working");
    model.release();

    // It finishes on its own; the page shows the tool calls, the result and the diff as they arrive.
    await page.locator("#run-head .status", { hasText: "ready for review" }).waitFor({ timeout: 60_000 });
    expect(srv.model.requests.some((r) => r.userTexts.includes("Add a greeting module") && r.userTexts.includes("also add notes"))).toBe(true);
    await page.locator("#run-timeline .tool", { hasText: "src/greeting.ts" }).first().waitFor();
    await page.locator("#run-timeline .msg.user", { hasText: "also add notes" }).waitFor();
    const diff = page.locator("#run-diff");
    await diff.locator(".d2h-file-list .d2h-file-name", { hasText: "src/greeting.ts" }).waitFor({ timeout: 15_000 });
    await diff.locator(".d2h-file-list .d2h-file-name", { hasText: "also-add-notes.md" }).waitFor();
    // Syntax highlighting (highlight.js through diff2html's UI bundle).
    await diff.locator(".d2h-code-line-ctn .hljs-keyword").first().waitFor();
    await shot(page, "3-run-idle-diff-unified");

    // Per-file navigation: the file list links to each file.
    await diff.locator(".d2h-file-list a.d2h-file-name", { hasText: "also-add-notes.md" }).click();
    await expect.poll(() => page.url()).toMatch(/#d2h-/);

    // Side by side.
    await diff.getByRole("link", { name: "Side by side view" }).click();
    await page.locator("#run-diff .d2h-file-side-diff").first().waitFor();
    expect(page.url()).toContain("view=side-by-side");
    await shot(page, "4-diff-side-by-side");

    // Download as a patch.
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download patch" }).click()]);
    const patch = fs.readFileSync((await download.path())!, "utf8");
    expect(download.suggestedFilename()).toBe(`${a.id}.patch`);
    expect(patch).toContain("+++ b/src/greeting.ts");
    expect(patch).toContain("+export function greet(name: string): string {");

    // Stop another run from its page.
    const b = (await srv.api("POST", "/api/runs", { repo: "demo", prompt: "Think forever" })).body;
    await page.goto(`${srv.url}/runs/${b.id}`);
    await page.locator(".live-badge.on").waitFor();
    await page.locator("#run-head .status", { hasText: "working" }).waitFor({ timeout: 90_000 }); // the agent is at work (a sandbox starting on busy cores)
    // The agent asks: the question appears live with a button per option; a click answers it, in the same session.
    const asked = page.locator("#run-questions .question", { hasText: "Which way?" });
    await asked.waitFor({ timeout: 60_000 });
    await shot(page, "5a-run-question");
    await asked.getByRole("button", { name: "left", exact: true }).click();
    await expect.poll(async () => (await srv.deckhand.store.inputs(b.id)).filter((i) => i.kind === "answer").map((i) => [i.text, i.author, i.source]), { timeout: 10_000 }).toEqual([[expect.stringContaining('"answers":[["left"]]'), "Ana", "web"]]);
    await expect.poll(() => srv.model.requests.some((r) => r.toolResults.some((t) => t.content.includes('"Which way?"="left"'))), { timeout: 30_000 }).toBe(true);
    await page.locator("#run-questions .question").waitFor({ state: "detached", timeout: 15_000 });
    expect((await srv.deckhand.store.inputs(b.id)).filter((i) => i.kind === "answer").map((i) => [i.author, i.source])).toEqual([["Ana", "web"]]);
    await page.getByRole("button", { name: "Stop run" }).click();
    await page.locator("#run-head .status", { hasText: "stopped" }).waitFor({ timeout: 15_000 });
    await page.getByRole("alert").filter({ hasText: "Stopped by Ana (web)" }).waitFor();
    expect(await page.getByLabel("Follow-up prompt").isVisible()).toBe(false);
    expect((await srv.deckhand.store.get(b.id))!.status).toBe("cancelled");
    await shot(page, "5-run-stopped");

    // The run's own link, on a phone, without signing in: read-only, and no way to the list.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const p2 = await phone.newPage();
    await p2.goto(a.url);
    await p2.locator("#run-head .status", { hasText: "ready for review" }).waitFor();
    expect(await p2.locator("#follow-up-text").count()).toBe(0);
    await p2.locator("#run-diff .d2h-file-name", { hasText: "src/greeting.ts" }).first().waitFor();
    await shot(p2, "6-link-on-phone");
    await p2.goto(`${srv.url}/`);
    await p2.getByRole("heading", { name: "Sign in" }).waitFor();
    await p2.goto(`${srv.url}/runs/${b.id}`);
    await p2.getByRole("heading", { name: "Sign in" }).waitFor();
    await phone.close();
    await ctx.close();
  }, 240_000); // two real runs and a question answered on a shared 2-core machine: a bound, not a goal
});
