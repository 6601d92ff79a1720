/**
 * The web dashboard: the runs list (`/`), a run (`/runs/<id>` signed in, `/r/<pageToken>` through its read-only
 * link), live updates over server-sent events (web/live-stream.ts: one renderer per run, its frames fanned out to
 * every viewer), the diff and its patch, and the follow-up / stop / answer-the-agent / revoke-link actions
 * (session + CSRF token; they go through RunService exactly like a Slack or Linear reply).
 *
 * Three encapsulated plugins, each with its own guard in `onRequest`: public (assets, sign-in), signed in (the
 * list, `/runs/...`, actions, sign-out; a session row must exist) and per-run link pages (`/r/<token>/...`: the
 * token must name a run before any handler runs).
 */
import zlib from "node:zlib";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Run } from "../../db/schema.ts";
import { readDigest } from "../../events/digest-store.ts";
import type { Logger } from "../../log/logger.ts";
import type { RunBus } from "../../runs/run-bus.ts";
import { MAX_PROMPT_CHARS, type RunService } from "../../runs/run-service.ts";
import { viewOf } from "../../runs/run-view.ts";
import { safeEqual } from "../../runs/tokens.ts";
import { asset } from "../../web/assets.ts";
import { diffFormat } from "../../web/diff-view.ts";
import { ACTIVE_STATUSES, SOURCES, STATUSES } from "../../web/format.ts";
import { renderRunPage } from "../../web/run-page.ts";
import { type ListFilters, type ListRow, renderLogin, renderRunsList } from "../../web/runs-list.ts";
import { clearSessionCookie, csrfMatches, csrfToken, hasControlChars, safeNext, sessionCookie, type WebSession } from "../../web/session.ts";
import type { SessionStore } from "../../web/session-store.ts";
import type { FailureGate } from "../guards.ts";
import { LiveStreams } from "../../web/live-stream.ts";
import { HttpError } from "../http-errors.ts";
import { renderDoctorPage } from "../../web/doctor-page.ts";
import type { CheckResult } from "../../ops/doctor.ts";
import { toHttp } from "./api.ts";
import { answerQuestion } from "../../runs/answers.ts";
import { answerFromForm } from "../../web/questions-view.ts";

export interface PageDeps {
  service: RunService;
  bus: RunBus;
  apiToken: string;
  /** Revocable sessions (signed cookie + row). */
  sessions: SessionStore;
  /** Failed sign-ins count here (per client address). */
  gate: FailureGate;
  publicUrl: string;
  log?: Logger;
  /** Live connections (server-sent events) per run and in total; more get 429. */
  live?: { perRun: number; total: number };
  /** The set-up checks for /doctor (signed-in admins). */
  doctor?: () => Promise<CheckResult[]>;
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** A page a person opens: without a session it redirects to the sign-in page (others get a 401). */
    page?: boolean;
  }
}

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

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
  const secret = deps.sessions.secret;
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

  /** What the guards found, for the handlers behind them. */
  const signedIn = new WeakMap<FastifyRequest, WebSession>();
  const byToken = new WeakMap<FastifyRequest, Run>();
  const sessionOf = (req: FastifyRequest): WebSession => {
    const s = signedIn.get(req);
    if (!s) throw new HttpError(401, "sign in first");
    return s;
  };
  const tokenRun = (req: FastifyRequest): Run => {
    const run = byToken.get(req);
    if (!run) throw new HttpError(404, "no such run page");
    return run;
  };

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

  /** A state-changing request: a valid session (the guard) and its CSRF token (403 otherwise). */
  const actor = (req: FastifyRequest): WebSession => {
    const s = sessionOf(req);
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

  const runById = async (id: string): Promise<Run> => {
    const run = /^[\w-]{1,64}$/.test(id) ? await store.get(id) : null;
    if (!run) throw new HttpError(404, `run ${id} not found`);
    return run;
  };
  const runByToken = async (token: string): Promise<Run | null> => (/^[\w-]{20,64}$/.test(token) ? store.getByPageToken(token) : null);
  const fullView = async (run: Run) => viewOf(run, await readDigest(store.db, run.id), service.runPageUrl(run));

  const listRows = async (f: ListFilters): Promise<ListRow[]> => {
    const rows = await store.list({ ...f, limit: 100 });
    return Promise.all(
      rows.map(async (r) => {
        if (r.result || !ACTIVE_STATUSES.has(r.status) || r.lastEventSeq === 0) return r;
        return { ...r, usage: (await readDigest(store.db, r.id)).usage };
      }),
    );
  };
  const runPage = async (req: FastifyRequest<{ Querystring: Record<string, string | undefined> }>, reply: FastifyReply, run: Run, base: string, s: WebSession | null) => {
    const view = await fullView(run);
    return html(req, reply, renderRunPage(view, run.diff, { base, format: diffFormat(req.query.view), fullDiff: req.query.full === "1", ...(s ? { csrf: csrfToken(s, secret), user: s.name } : {}) }));
  };
  const live = new LiveStreams({
    bus,
    log: deps.log ?? (app.log as unknown as Logger),
    load: (id) => store.get(id),
    view: fullView,
    listRows,
    perRun: deps.live?.perRun ?? 50,
    total: deps.live?.total ?? 500,
  });
  app.addHook("onClose", async () => live.close());
  /** How a run page's stream draws the diff, and which diff the page already has. */
  const streamView = (req: FastifyRequest<{ Querystring: Record<string, string | undefined> }>) => ({
    format: diffFormat(req.query.view),
    full: req.query.full === "1",
    diffKey: typeof req.query.diff === "string" ? req.query.diff.slice(0, 64) : "",
  });
  const patch = (run: Run, reply: FastifyReply) => {
    reply.header("cache-control", "no-store").header("content-disposition", `attachment; filename="${run.id}.patch"`).header("x-content-type-options", "nosniff").type("text/x-diff; charset=utf-8");
    return run.diff ?? "";
  };

  // ---- public: static files and signing in ----------------------------------------------------------------------
  app.register(async (pub) => {
    pub.get<{ Params: { name: string } }>("/assets/:name", async (req, reply) => {
      const a = asset(req.params.name);
      if (!a) throw new HttpError(404, "no such asset");
      reply.header("cache-control", "public, max-age=86400").header("etag", a.etag).header("vary", "accept-encoding").header("x-content-type-options", "nosniff").type(a.type);
      if (req.headers["if-none-match"] === a.etag) return reply.code(304).send();
      if (/\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""))) return reply.header("content-encoding", "gzip").send(a.gzip);
      return reply.send(a.body);
    });

    pub.get("/favicon.ico", async (_req, reply) => reply.code(204).header("cache-control", "public, max-age=86400").send());

    pub.get<{ Querystring: { next?: string } }>("/login", async (req, reply) => {
      if (hasControlChars(req.query.next)) throw new HttpError(400, "next must be a plain path");
      const next = safeNext(req.query.next);
      if (await deps.sessions.fromCookieHeader(req.headers.cookie)) return reply.code(303).header("location", next).send();
      return html(req, reply, renderLogin({ next }));
    });
    pub.post("/login", async (req, reply) => {
      if (deps.gate.lockedOut(req, reply)) return reply;
      const body = (req.body ?? {}) as Body;
      if (hasControlChars(body?.next)) throw new HttpError(400, "next must be a plain path");
      const next = safeNext(body?.next);
      if (!sameOrigin(req)) throw new HttpError(403, "cross-site sign-in refused");
      const token = typeof body?.token === "string" ? body.token.trim() : "";
      if (!token || !safeEqual(token, deps.apiToken)) {
        if (await deps.gate.failed(req, reply)) return reply;
        await new Promise((r) => setTimeout(r, 250));
        return html(req, reply, renderLogin({ next, error: "That is not the API token." }), 401);
      }
      const { cookie } = await deps.sessions.create(typeof body?.name === "string" ? body.name : null);
      reply.header("set-cookie", sessionCookie(cookie, { secure }));
      return reply.code(303).header("location", next).send();
    });
  });

  // ---- signed in: the list, `/runs/<id>`, actions, sign-out -------------------------------------------------------
  app.register(async (signed) => {
    signed.addHook("onRequest", async (req, reply) => {
      const s = await deps.sessions.fromCookieHeader(req.headers.cookie);
      if (s) return void signedIn.set(req, s);
      // Pages a person opens get the sign-in page; streams, patches and actions get a 401.
      if (req.method === "GET" && req.routeOptions.config?.page) {
        return reply.code(303).header("location", `/login?next=${encodeURIComponent(req.url)}`).send();
      }
      return reply.code(401).send({ error: "sign in first" });
    });
    const page = { config: { page: true } };

    signed.post("/logout", async (req, reply) => {
      const s = actor(req);
      await deps.sessions.revoke(s.sid);
      reply.header("set-cookie", clearSessionCookie(secure));
      return reply.code(303).header("location", "/login").send();
    });

    signed.get<{ Querystring: Record<string, string | undefined> }>("/", page, async (req, reply) => {
      const s = sessionOf(req);
      const f = listFilters(req.query);
      return html(req, reply, renderRunsList(await listRows(f), f, { repos: service.repos.names(), csrf: csrfToken(s, secret), user: s.name }));
    });
    signed.get<{ Querystring: Record<string, string | undefined> }>("/events", async (req, reply) => {
      await live.list(reply, listFilters(req.query));
    });

    signed.get("/runs/:id", page, async (req: IdReq, reply) => runPage(req, reply, await runById(req.params.id), `/runs/${req.params.id}`, sessionOf(req)));
    signed.get("/doctor", page, async (req, reply) => {
      const s = sessionOf(req);
      if (!deps.doctor) throw new HttpError(404, "set-up checks are not available in this process");
      return html(req, reply, renderDoctorPage(await deps.doctor(), { user: s.name, csrf: csrfToken(s, secret) }));
    });
    signed.get("/runs/:id/diff.patch", async (req: IdReq, reply) => patch(await runById(req.params.id), reply));
    signed.get("/runs/:id/events", async (req: IdReq, reply) => {
      const run = await runById(req.params.id);
      const s = sessionOf(req);
      await live.run(reply, run, { ...streamView(req), base: `/runs/${run.id}`, token: null, csrf: s ? csrfToken(s, secret) : null });
    });

    // ---- actions: exactly what a Slack or Linear reply does ---------------------------------------------------
    signed.post("/runs/:id/follow-up", async (req: IdReq, reply) => {
      const s = actor(req);
      const text = String((req.body as Body)?.text ?? "").trim();
      if (!text) throw new HttpError(400, "text must not be empty");
      if (text.length > MAX_PROMPT_CHARS) throw new HttpError(413, `the follow-up is longer than ${MAX_PROMPT_CHARS} characters`);
      const before = await runById(req.params.id);
      await service.followUp(before.id, { text, author: s.name ?? "web", source: "web" }).catch(toHttp);
      const msg = ACTIVE_STATUSES.has(before.status) ? "Sent: the agent gets it while it works." : "Sent: the run continues on the same branch.";
      return done(req, reply, 202, msg, `/runs/${before.id}`);
    });
    signed.post("/runs/:id/answers", async (req: IdReq, reply) => {
      const s = actor(req);
      const run = await runById(req.params.id);
      const { questionId, ...input } = answerFromForm((req.body ?? {}) as Record<string, unknown>);
      const answered = await answerQuestion(store, run.id, questionId, input, { author: s.name ?? "web", source: "web" }).catch(toHttp);
      await bus.changed(run.id);
      return done(req, reply, 202, `Sent to the agent: ${answered.summary}`, `/runs/${run.id}`);
    });
    signed.post("/runs/:id/stop", async (req: IdReq, reply) => {
      const s = actor(req);
      const run = await service.stop((await runById(req.params.id)).id, { author: s.name ?? "web", source: "web" }).catch(toHttp);
      return done(req, reply, 202, `Stopped: the run is ${run.status}.`, `/runs/${run.id}`);
    });
    signed.post("/runs/:id/rotate-link", async (req: IdReq, reply) => {
      actor(req);
      const run = await runById(req.params.id);
      await store.rotatePageToken(run.id);
      await bus.changed(run.id);
      deps.log?.info({ runId: run.id }, "run page link rotated");
      return done(req, reply, 200, "The old link no longer works.", `/runs/${run.id}`);
    });
  });

  // ---- per-run link pages: the token must name a run ------------------------------------------------------------
  app.register(async (linked) => {
    linked.addHook("onRequest", async (req, reply) => {
      const token = (req.params as { token?: unknown } | undefined)?.token;
      const run = typeof token === "string" ? await runByToken(token) : null;
      if (!run) return reply.code(404).send({ error: "no such run page" });
      byToken.set(req, run);
    });
    linked.get("/r/:token", async (req: TokenReq, reply) => runPage(req, reply, tokenRun(req), `/r/${req.params.token}`, await deps.sessions.fromCookieHeader(req.headers.cookie)));
    linked.get("/r/:token/diff.patch", async (req: TokenReq, reply) => patch(tokenRun(req), reply));
    linked.get("/r/:token/events", async (req: TokenReq, reply) => {
      // A revoked link stops streaming at the next change (the feed compares the run's current token).
      const s = await deps.sessions.fromCookieHeader(req.headers.cookie);
      await live.run(reply, tokenRun(req), { ...streamView(req), base: `/r/${req.params.token}`, token: req.params.token, csrf: s ? csrfToken(s, secret) : null });
    });
  });
}
