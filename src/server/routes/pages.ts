/**
 * The web dashboard: the runs list (`/`), a run (`/runs/<id>` signed in, `/r/<pageToken>` through its read-only
 * link), live updates over server-sent events fed by the RunBus, the diff and its patch, and the follow-up / stop /
 * revoke-link actions (session + CSRF token; they go through RunService exactly like a Slack or Linear reply).
 */
import zlib from "node:zlib";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Run } from "../../db/schema.ts";
import { digest } from "../../events/vocabulary.ts";
import type { Logger } from "../../log/logger.ts";
import type { RunBus } from "../../runs/run-bus.ts";
import { MAX_PROMPT_CHARS, type RunService } from "../../runs/run-service.ts";
import { viewOf } from "../../runs/run-view.ts";
import { isTerminal } from "../../runs/state-machine.ts";
import { randomToken, safeEqual } from "../../runs/tokens.ts";
import { asset } from "../../web/assets.ts";
import { diffFormat, diffKey, type DiffFormat } from "../../web/diff-view.ts";
import { ACTIVE_STATUSES, SOURCES, STATUSES } from "../../web/format.ts";
import { renderDiffSection, renderRunPage, runRegions } from "../../web/run-page.ts";
import { type ListFilters, type ListRow, renderLogin, renderRows, renderRunsList } from "../../web/runs-list.ts";
import {
  clearSessionCookie,
  csrfMatches,
  csrfToken,
  newSession,
  parseCookies,
  readSession,
  safeNext,
  SESSION_COOKIE,
  sessionCookie,
  sessionSecret,
  signSession,
  type WebSession,
} from "../../web/session.ts";
import { HttpError } from "../http-errors.ts";
import { renderDoctorPage } from "../../web/doctor-page.ts";
import type { CheckResult } from "../../ops/doctor.ts";
import { toHttp } from "./api.ts";

export interface PageDeps {
  service: RunService;
  bus: RunBus;
  apiToken: string;
  publicUrl: string;
  log?: Logger;
  /** The set-up checks for /doctor (signed-in admins). */
  doctor?: () => Promise<CheckResult[]>;
}

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const EVENTS_LIMIT = 100_000;

type Body = Record<string, unknown> | undefined;
type IdReq = FastifyRequest<{ Params: { id: string }; Querystring: Record<string, string | undefined> }>;
type TokenReq = FastifyRequest<{ Params: { token: string }; Querystring: Record<string, string | undefined> }>;

function html(req: FastifyRequest, reply: FastifyReply, body: string, status = 200) {
  reply
    .code(status)
    .header("vary", "accept-encoding")
    .header("content-security-policy", CSP)
    .header("x-content-type-options", "nosniff")
    .header("referrer-policy", "same-origin")
    .header("cache-control", "no-store")
    .type("text/html; charset=utf-8");
  if (body.length > 8192 && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""))) {
    reply.header("content-encoding", "gzip");
    return reply.send(zlib.gzipSync(body));
  }
  return reply.send(body);
}

function listFilters(q: Record<string, string | undefined>): ListFilters {
  const f: ListFilters = {};
  if (q.status && (STATUSES as readonly string[]).includes(q.status)) f.status = q.status;
  if (q.source && q.source in SOURCES) f.source = q.source;
  if (q.repo && q.repo.length <= 200) f.repo = q.repo;
  return f;
}

export function pageRoutes(app: FastifyInstance, deps: PageDeps) {
  const { service, bus } = deps;
  const store = service.store;
  const secret = sessionSecret(deps.apiToken);
  const secure = deps.publicUrl.startsWith("https:");
  const publicHost = (() => {
    try {
      return new URL(deps.publicUrl).host;
    } catch {
      return "";
    }
  })();

  if (!app.hasContentTypeParser("application/x-www-form-urlencoded")) {
    app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(String(body))));
    });
  }

  const sessionOf = (req: FastifyRequest): WebSession | null => readSession(parseCookies(req.headers.cookie)[SESSION_COOKIE], secret);

  /** A cross-site POST is refused even before its CSRF token is looked at. */
  const sameOrigin = (req: FastifyRequest): boolean => {
    const origin = req.headers.origin;
    // Browsers send "null" in some privacy modes; the CSRF token still has to match.
    if (!origin || origin === "null") return true;
    try {
      const host = new URL(origin).host;
      return host === req.headers.host || host === publicHost;
    } catch {
      return false;
    }
  };

  /** A state-changing request: a valid session (401 otherwise) and its CSRF token (403 otherwise). */
  const actor = (req: FastifyRequest): WebSession => {
    const s = sessionOf(req);
    if (!s) throw new HttpError(401, "sign in first");
    const body = req.body as Body;
    const token = (req.headers["x-csrf-token"] as string | undefined) ?? body?._csrf;
    if (!sameOrigin(req) || !csrfMatches(s, secret, token)) throw new HttpError(403, "invalid or missing CSRF token; reload the page and try again");
    return s;
  };

  const wantsJson = (req: FastifyRequest) => /application\/json/.test(req.headers.accept ?? "");
  const done = (req: FastifyRequest, reply: FastifyReply, status: number, message: string, location: string) => {
    if (wantsJson(req)) return reply.code(status).send({ message });
    return reply.code(303).header("location", location).send();
  };
  const toLogin = (req: FastifyRequest, reply: FastifyReply) => reply.code(303).header("location", `/login?next=${encodeURIComponent(req.url)}`).send();

  const runById = async (id: string): Promise<Run> => {
    const run = /^[\w-]{1,64}$/.test(id) ? await store.get(id) : null;
    if (!run) throw new HttpError(404, `run ${id} not found`);
    return run;
  };
  const runByToken = async (token: string): Promise<Run | null> => (/^[\w-]{20,64}$/.test(token) ? store.getByPageToken(token) : null);
  const loadByToken = async (token: string): Promise<Run> => {
    const run = await runByToken(token);
    if (!run) throw new HttpError(404, "no such run page");
    return run;
  };
  const fullView = async (run: Run) => viewOf(run, await store.events(run.id, 0, EVENTS_LIMIT), service.runPageUrl(run));

  // ---- static files -------------------------------------------------------------------------------------------
  app.get<{ Params: { name: string } }>("/assets/:name", async (req, reply) => {
    const a = asset(req.params.name);
    if (!a) throw new HttpError(404, "no such asset");
    reply.header("cache-control", "public, max-age=86400").header("etag", a.etag).header("vary", "accept-encoding").header("x-content-type-options", "nosniff").type(a.type);
    if (req.headers["if-none-match"] === a.etag) return reply.code(304).send();
    if (/\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""))) return reply.header("content-encoding", "gzip").send(a.gzip);
    return reply.send(a.body);
  });

  app.get("/favicon.ico", async (_req, reply) => reply.code(204).header("cache-control", "public, max-age=86400").send());

  // ---- signing in and out -------------------------------------------------------------------------------------
  app.get<{ Querystring: { next?: string } }>("/login", async (req, reply) => {
    const next = safeNext(req.query.next);
    if (sessionOf(req)) return reply.code(303).header("location", next).send();
    return html(req, reply, renderLogin({ next }));
  });
  app.post("/login", async (req, reply) => {
    const body = (req.body ?? {}) as Body;
    const next = safeNext(body?.next);
    if (!sameOrigin(req)) throw new HttpError(403, "cross-site sign-in refused");
    const token = typeof body?.token === "string" ? body.token.trim() : "";
    if (!token || !safeEqual(token, deps.apiToken)) {
      await new Promise((r) => setTimeout(r, 250));
      return html(req, reply, renderLogin({ next, error: "That is not the API token." }), 401);
    }
    const s = newSession(typeof body?.name === "string" ? body.name : null);
    reply.header("set-cookie", sessionCookie(signSession(s, secret), { secure }));
    return reply.code(303).header("location", next).send();
  });
  app.post("/logout", async (req, reply) => {
    actor(req);
    reply.header("set-cookie", clearSessionCookie(secure));
    return reply.code(303).header("location", "/login").send();
  });

  // ---- the runs list ------------------------------------------------------------------------------------------
  const listRows = async (f: ListFilters): Promise<ListRow[]> => {
    const rows = await store.list({ ...f, limit: 100 });
    return Promise.all(
      rows.map(async (r) => {
        if (r.result || !ACTIVE_STATUSES.has(r.status) || r.lastEventSeq === 0) return r;
        return { ...r, usage: digest(await store.events(r.id, 0, EVENTS_LIMIT)).usage };
      }),
    );
  };
  app.get<{ Querystring: Record<string, string | undefined> }>("/", async (req, reply) => {
    const s = sessionOf(req);
    if (!s) return toLogin(req, reply);
    const f = listFilters(req.query);
    return html(req, reply, renderRunsList(await listRows(f), f, { repos: service.repos.names(), csrf: csrfToken(s, secret), user: s.name }));
  });
  app.get<{ Querystring: Record<string, string | undefined> }>("/events", async (req, reply) => {
    if (!sessionOf(req)) throw new HttpError(401, "sign in first");
    const f = listFilters(req.query);
    await stream(req, reply, 400, () => true, async () => ({ events: [["update", { rows: renderRows(await listRows(f)) }]] }));
  });

  // ---- one run ------------------------------------------------------------------------------------------------
  const runPage = async (req: FastifyRequest<{ Querystring: Record<string, string | undefined> }>, reply: FastifyReply, run: Run, base: string) => {
    const s = sessionOf(req);
    const view = await fullView(run);
    return html(req, reply, renderRunPage(view, run.diff, { base, format: diffFormat(req.query.view), fullDiff: req.query.full === "1", ...(s ? { csrf: csrfToken(s, secret), user: s.name } : {}) }));
  };
  app.get("/runs/:id", async (req: IdReq, reply) => {
    if (!sessionOf(req)) return toLogin(req, reply);
    return runPage(req, reply, await runById(req.params.id), `/runs/${req.params.id}`);
  });
  app.get("/doctor", async (req, reply) => {
    const s = sessionOf(req);
    if (!s) return toLogin(req, reply);
    if (!deps.doctor) throw new HttpError(404, "set-up checks are not available in this process");
    return html(req, reply, renderDoctorPage(await deps.doctor(), { user: s.name, csrf: csrfToken(s, secret) }));
  });
  app.get("/r/:token", async (req: TokenReq, reply) => runPage(req, reply, await loadByToken(req.params.token), `/r/${req.params.token}`));

  const patch = (run: Run, reply: FastifyReply) => {
    reply.header("cache-control", "no-store").header("content-disposition", `attachment; filename="${run.id}.patch"`).header("x-content-type-options", "nosniff").type("text/x-diff; charset=utf-8");
    return run.diff ?? "";
  };
  app.get("/runs/:id/diff.patch", async (req: IdReq, reply) => {
    if (!sessionOf(req)) throw new HttpError(401, "sign in first");
    return patch(await runById(req.params.id), reply);
  });
  app.get("/r/:token/diff.patch", async (req: TokenReq, reply) => patch(await loadByToken(req.params.token), reply));

  /** The live stream of one run: the page's regions, re-rendered on every change; timeline items only when they changed. */
  const runStream = async (req: FastifyRequest<{ Querystring: Record<string, string | undefined> }>, reply: FastifyReply, first: Run, base: string, reload: () => Promise<Run | null>) => {
    const format: DiffFormat = diffFormat(req.query.view);
    const full = req.query.full === "1";
    const sent = new Map<string, string>();
    let lastDiff = typeof req.query.diff === "string" ? req.query.diff : "";
    await stream(
      req,
      reply,
      150,
      (id) => id === first.id,
      async () => {
        const run = await reload();
        if (!run) return { events: [["gone", {}]], end: true };
        const regions = runRegions(await fullView(run));
        const timeline = regions.timeline.filter((t) => sent.get(t.id) !== t.html);
        for (const t of timeline) sent.set(t.id, t.html);
        const key = diffKey(run.diff);
        const diff = key !== lastDiff ? renderDiffSection(run.diff, base, format, full) : undefined;
        lastDiff = key;
        const end = isTerminal(run.status);
        return { events: [["update", { ...regions, timeline, diffKey: key, ...(diff !== undefined ? { diff } : {}) }], ...(end ? [["end", {}] as [string, unknown]] : [])], end };
      },
    );
  };
  app.get("/runs/:id/events", async (req: IdReq, reply) => {
    if (!sessionOf(req)) throw new HttpError(401, "sign in first");
    const run = await runById(req.params.id);
    await runStream(req, reply, run, `/runs/${run.id}`, () => store.get(run.id));
  });
  app.get("/r/:token/events", async (req: TokenReq, reply) => {
    const token = req.params.token;
    const run = await loadByToken(token);
    // A revoked link stops streaming at the next change (the reload by token finds nothing).
    await runStream(req, reply, run, `/r/${token}`, () => runByToken(token));
  });

  // ---- actions: exactly what a Slack or Linear reply does -----------------------------------------------------
  app.post("/runs/:id/follow-up", async (req: IdReq, reply) => {
    const s = actor(req);
    const text = String((req.body as Body)?.text ?? "").trim();
    if (!text) throw new HttpError(400, "text must not be empty");
    if (text.length > MAX_PROMPT_CHARS) throw new HttpError(413, `the follow-up is longer than ${MAX_PROMPT_CHARS} characters`);
    const before = await runById(req.params.id);
    await service.followUp(before.id, { text, author: s.name ?? "web", source: "web" }).catch(toHttp);
    const msg = ACTIVE_STATUSES.has(before.status) ? "Sent: the agent gets it while it works." : "Sent: the run continues on the same branch.";
    return done(req, reply, 202, msg, `/runs/${before.id}`);
  });
  app.post("/runs/:id/stop", async (req: IdReq, reply) => {
    const s = actor(req);
    const run = await service.stop((await runById(req.params.id)).id, { author: s.name ?? "web", source: "web" }).catch(toHttp);
    return done(req, reply, 202, `Stopped: the run is ${run.status}.`, `/runs/${run.id}`);
  });
  app.post("/runs/:id/rotate-link", async (req: IdReq, reply) => {
    actor(req);
    const run = await runById(req.params.id);
    await store.patch(run.id, { pageToken: randomToken(24) });
    await bus.changed(run.id);
    deps.log?.info({ runId: run.id }, "run page link rotated");
    return done(req, reply, 200, "The old link no longer works.", `/runs/${run.id}`);
  });

  /**
   * Server-sent events: `produce` runs once at the start and again (debounced by `debounceMs`) whenever the bus says
   * a watched run changed, and every 10 s (liveness). Ends when `produce` says so or the browser goes away.
   */
  async function stream(req: FastifyRequest, reply: FastifyReply, debounceMs: number, watch: (runId: string) => boolean, produce: () => Promise<{ events: [string, unknown][]; end?: boolean }>) {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no", connection: "keep-alive", "x-content-type-options": "nosniff" });
    res.write("retry: 3000\n\n");
    let closed = false;
    let running = false;
    let again = false;
    let timer: NodeJS.Timeout | null = null;
    const close = () => {
      if (closed) return;
      closed = true;
      off();
      clearInterval(ping);
      if (timer) clearTimeout(timer);
      res.end();
    };
    const flush = async (): Promise<void> => {
      if (closed) return;
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        const out = await produce();
        if (closed) return;
        for (const [event, data] of out.events) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
        if (out.end) close();
      } catch (err) {
        (deps.log ?? req.log).warn({ err }, "live update failed");
      } finally {
        running = false;
      }
      if (again && !closed) {
        again = false;
        schedule();
      }
    };
    const schedule = () => {
      if (timer || closed) return;
      timer = setTimeout(() => {
        timer = null;
        void flush();
      }, debounceMs);
    };
    const off = bus.onRun((id) => watch(id) && schedule());
    const ping = setInterval(() => {
      res.write(": ping\n\n");
      schedule();
    }, 10_000);
    res.on("close", close);
    await flush();
  }
}
