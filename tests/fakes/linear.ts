/**
 * A fake Linear GraphQL API (the real `LinearClient` from @linear/sdk talks to it) and helpers that
 * build and post signed Linear webhooks.
 *
 * How it works: the SDK sends `POST {query, variables}` (no `operationName` field; the operation
 * name is inside the document, e.g. `mutation createAgentActivity(...)` or `query team_states(...)`).
 * The fake parses the document with a tiny GraphQL parser and answers exactly the fields the SDK
 * asks for, resolving them against an in-memory store. Only the SDK operations listed in
 * `SUPPORTED_OPERATIONS` are served; any other SDK operation, or an unknown root field, gets a
 * GraphQL error. Anonymous / custom documents (e.g. `client.client.rawRequest("query { viewer { id } }")`)
 * are served when every root field is known.
 *
 * Checked against @linear/sdk 98.0.0.
 */
import { createHmac, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { LinearDocument } from "@linear/sdk";

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

export interface LinearOp {
  /** GraphQL operation name, which equals the SDK method / query name: `createAgentActivity`, `team_states`, ... */
  operation: string;
  variables: any;
  at: number;
  /** The raw `Authorization` header ("Bearer <token>" or the API key). */
  auth?: string;
  /** HTTP status the fake answered with. */
  status?: number;
  /** Set when the fake answered with an error (injected or real). */
  error?: string;
  query?: string;
}

export interface FakeIssue {
  id: string;
  identifier: string;
  number: number;
  title: string;
  description: string | null;
  teamId: string;
  stateId: string;
  labelIds: string[];
  branchName: string;
  url: string;
  priority: number;
  assigneeId: string | null;
  delegateId: string | null;
  creatorId: string | null;
  parentId: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface FakeTeam {
  id: string;
  key: string;
  name: string;
}

export type WorkflowStateType = "triage" | "backlog" | "unstarted" | "started" | "completed" | "canceled";

export interface FakeWorkflowState {
  id: string;
  teamId: string;
  name: string;
  type: WorkflowStateType;
  position: number;
  color: string;
  createdAt: string;
}

export interface FakeLabel {
  id: string;
  name: string;
  color: string;
  teamId: string | null;
}

export interface FakeComment {
  id: string;
  issueId: string;
  body: string;
  parentId: string | null;
  userId: string;
  createdAt: string;
  at: number;
}

export interface FakeAttachment {
  id: string;
  issueId: string;
  title: string;
  subtitle: string | null;
  url: string;
  metadata: any;
  iconUrl: string | null;
  createdAt: string;
  updatedAt: string;
  /** How many times it was written (create + upserts). */
  writes: number;
}

export interface FakeActivity {
  id: string;
  agentSessionId: string;
  content: any;
  ephemeral?: boolean;
  signal?: string;
  signalMetadata?: any;
  at: number;
}

export type AgentSessionStatus = "pending" | "active" | "error" | "awaitingInput" | "complete" | "stale" | "stopping";

export interface FakeSession {
  id: string;
  issueId: string;
  plan?: any;
  externalUrls: { label: string; url: string }[];
  externalLink?: string;
  summary?: string;
  status: AgentSessionStatus;
  commentId?: string;
  creatorId?: string;
  createdAt: string;
  updatedAt: string;
}

export type FailMode =
  | { status: number }
  | { rateLimited: true; status?: 400 | 429; retryAfterSec?: number }
  | { graphqlError: string; type?: string; code?: string; status?: number };

export interface FakeLinear {
  /** "http://127.0.0.1:<port>/graphql" */
  apiUrl: string;
  ops: LinearOp[];
  activities: FakeActivity[];
  sessions: Map<string, FakeSession>;
  issues: Map<string, FakeIssue>;
  teams: Map<string, FakeTeam>;
  states: Map<string, FakeWorkflowState>;
  labels: Map<string, FakeLabel>;
  comments: FakeComment[];
  attachments: Map<string, FakeAttachment>;
  addIssue(
    i: Partial<FakeIssue> & { id: string; identifier: string; title: string; teamId: string; labels?: { id?: string; name: string; color?: string }[] },
  ): FakeIssue;
  /** Seeds the team's workflow states too (see `statesOf`). */
  addTeam(t: { id: string; key: string; name: string }): void;
  /** Workflow states of a team in creation order (NOT sorted by position, like Linear). */
  statesOf(teamId: string): FakeWorkflowState[];
  /** The team's state of a type with the lowest position. */
  stateOfType(teamId: string, type: WorkflowStateType): FakeWorkflowState | undefined;
  addSession(s: Partial<FakeSession> & { id: string; issueId: string }): FakeSession;
  /** Make the next `n` requests of `operation` ("*" = any) fail. Queued per operation, FIFO. */
  failNext(operation: string | "*", n: number, mode: FailMode): void;
  /** Drops every pending failNext rule (Linear is healthy again). */
  clearFailures(): void;
  /** Resolves with the first recorded op (past or future) matching `pred`. */
  waitFor(pred: (op: LinearOp) => boolean, timeoutMs?: number): Promise<LinearOp>;
  opsNamed(operation: string): LinearOp[];
  /** The OAuth access token accepted as `Authorization: Bearer <token>`. */
  token: string;
  /** A personal API key accepted as the raw `Authorization` header. */
  apiKey: string;
  appUserId: string;
  organizationId: string;
  /**
   * OAuth code exchange at `POST /oauth/token` (form-encoded, like Linear's): a code from `oauthCode()` with any
   * non-empty client id/secret gets `token` and a refresh token (`grant_type=refresh_token` swaps it for a new
   * pair); each code and refresh token works once. Exchanges are recorded here.
   */
  oauthCode(): string;
  tokenExchanges: { grant: string; code: string; clientId: string; redirectUri: string; ok: boolean }[];
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// A tiny GraphQL parser (enough for the SDK's generated documents)
// ---------------------------------------------------------------------------------------------

type ValueNode =
  | { k: "var"; name: string }
  | { k: "lit"; value: unknown }
  | { k: "list"; items: ValueNode[] }
  | { k: "obj"; fields: Record<string, ValueNode> };

type Sel =
  | { k: "field"; alias?: string; name: string; args: Record<string, ValueNode>; sel?: Sel[] }
  | { k: "spread"; name: string }
  | { k: "inline"; on?: string; sel: Sel[] };

interface OpDef {
  kind: "query" | "mutation" | "subscription";
  name?: string;
  sel: Sel[];
}

interface ParsedDoc {
  ops: OpDef[];
  frags: Map<string, { on: string; sel: Sel[] }>;
}

type Tok = { k: "p" | "name" | "str" | "num"; v: string };

const TOKEN_RE = /[\s,\ufeff]+|#[^\n]*|(\.\.\.)|([{}()[\]:=!$@|&])|("""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*")|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|([_A-Za-z][_0-9A-Za-z]*)/y;

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  TOKEN_RE.lastIndex = 0;
  let pos = 0;
  while (pos < src.length) {
    TOKEN_RE.lastIndex = pos;
    const m = TOKEN_RE.exec(src);
    if (!m) throw new GraphQLSyntaxError(`Syntax Error: Unexpected character "${src[pos]}".`);
    pos = TOKEN_RE.lastIndex;
    if (m[1]) out.push({ k: "p", v: "..." });
    else if (m[2]) out.push({ k: "p", v: m[2] });
    else if (m[3]) {
      const s = m[3];
      out.push({ k: "str", v: s.startsWith('"""') ? s.slice(3, -3) : (JSON.parse(s) as string) });
    } else if (m[4]) out.push({ k: "num", v: m[4] });
    else if (m[5]) out.push({ k: "name", v: m[5] });
  }
  return out;
}

class GraphQLSyntaxError extends Error {}

function parseDocument(src: string): ParsedDoc {
  const t = tokenize(src);
  let i = 0;
  const peek = (v?: string) => (v === undefined ? t[i] : t[i] && t[i].v === v && (t[i].k === "p" || t[i].k === "name") ? t[i] : undefined);
  const next = () => {
    const tok = t[i++];
    if (!tok) throw new GraphQLSyntaxError("Syntax Error: Unexpected <EOF>.");
    return tok;
  };
  const expect = (v: string) => {
    const tok = next();
    if (tok.v !== v) throw new GraphQLSyntaxError(`Syntax Error: Expected "${v}", found "${tok.v}".`);
  };
  const name = () => {
    const tok = next();
    if (tok.k !== "name") throw new GraphQLSyntaxError(`Syntax Error: Expected Name, found "${tok.v}".`);
    return tok.v;
  };
  const value = (): ValueNode => {
    const tok = next();
    if (tok.k === "p" && tok.v === "$") return { k: "var", name: name() };
    if (tok.k === "num") return { k: "lit", value: Number(tok.v) };
    if (tok.k === "str") return { k: "lit", value: tok.v };
    if (tok.k === "name") {
      if (tok.v === "true") return { k: "lit", value: true };
      if (tok.v === "false") return { k: "lit", value: false };
      if (tok.v === "null") return { k: "lit", value: null };
      return { k: "lit", value: tok.v }; // enum
    }
    if (tok.v === "[") {
      const items: ValueNode[] = [];
      while (!peek("]")) items.push(value());
      expect("]");
      return { k: "list", items };
    }
    if (tok.v === "{") {
      const fields: Record<string, ValueNode> = {};
      while (!peek("}")) {
        const n = name();
        expect(":");
        fields[n] = value();
      }
      expect("}");
      return { k: "obj", fields };
    }
    throw new GraphQLSyntaxError(`Syntax Error: Unexpected "${tok.v}".`);
  };
  const args = (): Record<string, ValueNode> => {
    const out: Record<string, ValueNode> = {};
    if (!peek("(")) return out;
    expect("(");
    while (!peek(")")) {
      const n = name();
      expect(":");
      out[n] = value();
    }
    expect(")");
    return out;
  };
  const directives = () => {
    while (peek("@")) {
      next();
      name();
      args();
    }
  };
  const skipVariableDefinitions = () => {
    if (!peek("(")) return;
    let depth = 0;
    do {
      const tok = next();
      if (tok.k === "p" && (tok.v === "(" || tok.v === "[" || tok.v === "{")) depth++;
      if (tok.k === "p" && (tok.v === ")" || tok.v === "]" || tok.v === "}")) depth--;
    } while (depth > 0);
  };
  const selectionSet = (): Sel[] => {
    expect("{");
    const out: Sel[] = [];
    while (!peek("}")) {
      if (peek("...")) {
        next();
        if (peek("on")) {
          next();
          const on = name();
          directives();
          out.push({ k: "inline", on, sel: selectionSet() });
        } else if (peek("{") || peek("@")) {
          directives();
          out.push({ k: "inline", sel: selectionSet() });
        } else {
          out.push({ k: "spread", name: name() });
          directives();
        }
        continue;
      }
      let n = name();
      let alias: string | undefined;
      if (peek(":")) {
        next();
        alias = n;
        n = name();
      }
      const a = args();
      directives();
      out.push({ k: "field", alias, name: n, args: a, sel: peek("{") ? selectionSet() : undefined });
    }
    expect("}");
    return out;
  };

  const doc: ParsedDoc = { ops: [], frags: new Map() };
  while (i < t.length) {
    if (peek("{")) {
      doc.ops.push({ kind: "query", sel: selectionSet() });
      continue;
    }
    const kw = name();
    if (kw === "fragment") {
      const fname = name();
      expect("on");
      const on = name();
      directives();
      doc.frags.set(fname, { on, sel: selectionSet() });
    } else if (kw === "query" || kw === "mutation" || kw === "subscription") {
      const opName = t[i]?.k === "name" ? name() : undefined;
      skipVariableDefinitions();
      directives();
      doc.ops.push({ kind: kw, name: opName, sel: selectionSet() });
    } else {
      throw new GraphQLSyntaxError(`Syntax Error: Unexpected Name "${kw}".`);
    }
  }
  return doc;
}

function resolveValue(v: ValueNode, vars: Record<string, unknown>): unknown {
  switch (v.k) {
    case "var":
      return vars[v.name] === undefined ? undefined : vars[v.name];
    case "lit":
      return v.value;
    case "list":
      return v.items.map((x) => resolveValue(x, vars));
    case "obj": {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v.fields)) {
        const r = resolveValue(x, vars);
        if (r !== undefined) o[k] = r;
      }
      return o;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Executor: resolves a selection set against plain objects whose properties are values or
// functions `(args) => value`. Objects carry `__typename` so that `... on X` works.
// ---------------------------------------------------------------------------------------------

class GqlError extends Error {
  constructor(
    message: string,
    readonly extensions: Record<string, unknown>,
    readonly status = 400,
  ) {
    super(message);
  }
}

const notFound = (entity: string) =>
  new GqlError(`Entity not found: ${entity}`, {
    code: "INPUT_ERROR",
    type: "invalid input",
    userError: true,
    userPresentableMessage: `Could not find referenced ${entity}.`,
  });

const invalidInput = (message: string) =>
  new GqlError(message, { code: "INPUT_ERROR", type: "invalid input", userError: true, userPresentableMessage: message });

const validationError = (message: string) =>
  new GqlError(message, { code: "GRAPHQL_VALIDATION_FAILED", type: "graphql error", userPresentableMessage: message });

/** Every __typename the fake emits; fragments on other (abstract) types, e.g. interfaces, always apply. */
const CONCRETE_TYPES = new Set<string>([
  "User", "Organization", "Team", "WorkflowState", "IssueLabel", "Issue", "IssueSharedAccess", "Comment", "Attachment",
  "AgentSession", "AgentSessionExternalLink", "AgentActivity", "AgentActivityThoughtContent", "AgentActivityActionContent",
  "AgentActivityElicitationContent", "AgentActivityResponseContent", "AgentActivityErrorContent", "AgentActivityPromptContent",
  "PageInfo", "AgentActivityPayload", "AgentSessionPayload", "IssuePayload", "CommentPayload", "AttachmentPayload",
]);
const typed = <T extends object>(typename: string, o: T): T & { __typename: string } => {
  CONCRETE_TYPES.add(typename);
  return Object.assign(o, { __typename: typename });
};

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function deepMerge(target: Record<string, unknown>, src: Record<string, unknown>) {
  for (const [k, v] of Object.entries(src)) {
    const cur = target[k];
    if (isPlainObject(cur) && isPlainObject(v)) deepMerge(cur, v);
    else if (Array.isArray(cur) && Array.isArray(v) && cur.length === v.length)
      cur.forEach((c, idx) => (isPlainObject(c) && isPlainObject(v[idx]) ? deepMerge(c, v[idx] as any) : undefined));
    else target[k] = v;
  }
}

function execute(doc: ParsedDoc, sel: Sel[], root: any, vars: Record<string, unknown>): Record<string, unknown> {
  const applies = (on: string | undefined, obj: any) =>
    !on || !obj.__typename || obj.__typename === on || !CONCRETE_TYPES.has(on);

  const complete = (v: unknown, sub: Sel[] | undefined): unknown => {
    if (v === undefined || v === null) return null;
    if (Array.isArray(v)) return v.map((x) => complete(x, sub));
    if (sub && typeof v === "object") return selectOn(v, sub);
    return v;
  };

  const selectOn = (obj: any, items: Sel[]): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const s of items) {
      if (s.k === "field") {
        const key = s.alias ?? s.name;
        if (s.name === "__typename") {
          out[key] = obj.__typename ?? null;
          continue;
        }
        let v = obj[s.name];
        if (typeof v === "function") {
          const a: Record<string, unknown> = {};
          for (const [k, x] of Object.entries(s.args)) {
            const r = resolveValue(x, vars);
            if (r !== undefined) a[k] = r;
          }
          v = v.call(obj, a);
        }
        const c = complete(v, s.sel);
        if (isPlainObject(out[key]) && isPlainObject(c)) deepMerge(out[key] as any, c);
        else out[key] = c;
      } else if (s.k === "spread") {
        const f = doc.frags.get(s.name);
        if (!f) throw validationError(`Unknown fragment "${s.name}".`);
        if (applies(f.on, obj)) deepMerge(out, selectOn(obj, f.sel));
      } else if (applies(s.on, obj)) {
        deepMerge(out, selectOn(obj, s.sel));
      }
    }
    return out;
  };

  return selectOn(root, sel);
}

// ---------------------------------------------------------------------------------------------
// Filters and connections
// ---------------------------------------------------------------------------------------------

function matchComparator(value: any, cmp: any): boolean {
  if (!isPlainObject(cmp)) return true;
  for (const [op, arg] of Object.entries(cmp)) {
    const a: any = arg;
    const s = typeof value === "string" ? value.toLowerCase() : value;
    switch (op) {
      case "eq":
        if (value !== a) return false;
        break;
      case "neq":
        if (value === a) return false;
        break;
      case "in":
        if (!(a as unknown[]).includes(value)) return false;
        break;
      case "nin":
        if ((a as unknown[]).includes(value)) return false;
        break;
      case "eqIgnoreCase":
        if (s !== String(a).toLowerCase()) return false;
        break;
      case "neqIgnoreCase":
        if (s === String(a).toLowerCase()) return false;
        break;
      case "contains":
        if (!String(value ?? "").includes(a)) return false;
        break;
      case "containsIgnoreCase":
        if (!String(value ?? "").toLowerCase().includes(String(a).toLowerCase())) return false;
        break;
      case "notContains":
        if (String(value ?? "").includes(a)) return false;
        break;
      case "startsWith":
        if (!String(value ?? "").startsWith(a)) return false;
        break;
      case "endsWith":
        if (!String(value ?? "").endsWith(a)) return false;
        break;
      case "null":
        if ((value === null || value === undefined) !== a) return false;
        break;
      case "gt":
        if (!(value > a)) return false;
        break;
      case "gte":
        if (!(value >= a)) return false;
        break;
      case "lt":
        if (!(value < a)) return false;
        break;
      case "lte":
        if (!(value <= a)) return false;
        break;
      default:
        // A nested relation filter, e.g. `team: { id: { eq } }` handled by matchFilter.
        if (isPlainObject(value)) {
          if (!matchFilter(value, { [op]: a })) return false;
        }
    }
  }
  return true;
}

/** Matches a plain record against a Linear-style filter (`{ type: { eq: "started" }, and: [...], or: [...] }`). */
function matchFilter(record: Record<string, any>, filter: any): boolean {
  if (!isPlainObject(filter)) return true;
  for (const [field, cond] of Object.entries(filter)) {
    if (field === "and") {
      if (!(cond as any[]).every((f) => matchFilter(record, f))) return false;
    } else if (field === "or") {
      if (!(cond as any[]).some((f) => matchFilter(record, f))) return false;
    } else {
      const v = record[field];
      if (isPlainObject(v) && isPlainObject(cond) && !Object.keys(cond).some((k) => k in COMPARATORS)) {
        if (!matchFilter(v, cond)) return false;
      } else if (!matchComparator(v, cond)) return false;
    }
  }
  return true;
}

const COMPARATORS = Object.fromEntries(
  ["eq", "neq", "in", "nin", "eqIgnoreCase", "neqIgnoreCase", "contains", "containsIgnoreCase", "notContains", "startsWith", "endsWith", "null", "gt", "gte", "lt", "lte"].map(
    (k) => [k, true],
  ),
);

function connection<T extends { id: string }>(
  typename: string,
  items: T[],
  args: any,
  view: (x: T) => unknown,
  filterable: (x: T) => Record<string, any> = (x) => x as any,
) {
  let list = items.filter((x) => matchFilter(filterable(x), args?.filter));
  if (args?.after) {
    const idx = list.findIndex((x) => x.id === args.after);
    list = idx >= 0 ? list.slice(idx + 1) : list;
  }
  if (args?.before) {
    const idx = list.findIndex((x) => x.id === args.before);
    list = idx >= 0 ? list.slice(0, idx) : list;
  }
  const total = list.length;
  let page = list;
  if (typeof args?.first === "number") page = page.slice(0, args.first);
  else if (typeof args?.last === "number") page = page.slice(Math.max(0, page.length - args.last));
  else page = page.slice(0, 50);
  const nodes = page.map(view);
  return typed(typename, {
    nodes,
    edges: page.map((x, idx) => ({ node: nodes[idx], cursor: x.id })),
    pageInfo: typed("PageInfo", {
      startCursor: page[0]?.id ?? null,
      endCursor: page[page.length - 1]?.id ?? null,
      hasNextPage: page.length < total && !args?.last,
      hasPreviousPage: Boolean(args?.after) || (typeof args?.last === "number" && page.length < total),
    }),
  });
}

// ---------------------------------------------------------------------------------------------
// The fake server
// ---------------------------------------------------------------------------------------------

/** The SDK operations the fake serves. Other SDK operations get a GraphQL error. */
export const SUPPORTED_OPERATIONS = new Set([
  "viewer",
  "organization",
  "user",
  "issue",
  "issue_comments",
  "issue_labels",
  "issue_attachments",
  "team",
  "team_states",
  "workflowState",
  "workflowStates",
  "comment",
  "attachment",
  "agentActivity",
  "agentSession",
  "agentSession_activities",
  "createAgentActivity",
  "updateAgentSession",
  "updateIssue",
  "createComment",
  "createAttachment",
  "attachmentLinkURL",
  "agentSessionCreateOnIssue",
  "agentSessionCreateOnComment",
]);

let sdkOperationNames: Set<string> | undefined;
function sdkOperations(): Set<string> {
  if (!sdkOperationNames) {
    sdkOperationNames = new Set();
    for (const [k, v] of Object.entries(LinearDocument as Record<string, unknown>)) {
      if (!k.endsWith("Document") || !v) continue;
      const m = /^\s*(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)/.exec(String(v));
      if (m) sdkOperationNames.add(m[1]);
    }
  }
  return sdkOperationNames;
}

const STATE_SEED: { key: string; name: string; type: WorkflowStateType; position: number; color: string }[] = [
  // Creation order deliberately differs from position order for the two started states:
  // Linear does not return states sorted by position, so callers must sort themselves.
  { key: "backlog", name: "Backlog", type: "backlog", position: 0, color: "#bec2c8" },
  { key: "todo", name: "Todo", type: "unstarted", position: 1, color: "#e2e2e2" },
  { key: "in-review", name: "In Review", type: "started", position: 3, color: "#0f783c" },
  { key: "in-progress", name: "In Progress", type: "started", position: 2, color: "#f2c94c" },
  { key: "done", name: "Done", type: "completed", position: 4, color: "#5e6ad2" },
  { key: "canceled", name: "Canceled", type: "canceled", position: 5, color: "#95a2b3" },
  { key: "duplicate", name: "Duplicate", type: "canceled", position: 6, color: "#95a2b3" },
];

const ORG_URL_KEY = "fake-org";

function slugify(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 60);
}

function readBody(req: IncomingMessage, limit = 5 * 1024 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new Error("body too large"));
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

export async function startFakeLinear(opts: { token?: string; apiKey?: string; appUserId?: string; organizationId?: string } = {}): Promise<FakeLinear> {
  const token = opts.token ?? `lin_oauth_${randomUUID().replace(/-/g, "")}`;
  const apiKey = opts.apiKey ?? `lin_api_${randomUUID().replace(/-/g, "")}`;
  const appUserId = opts.appUserId ?? randomUUID();
  const organizationId = opts.organizationId ?? randomUUID();
  const startedAt = new Date().toISOString();

  const ops: LinearOp[] = [];
  const activities: FakeActivity[] = [];
  const sessions = new Map<string, FakeSession>();
  const issues = new Map<string, FakeIssue>();
  const teams = new Map<string, FakeTeam>();
  const states = new Map<string, FakeWorkflowState>();
  const labels = new Map<string, FakeLabel>();
  const comments: FakeComment[] = [];
  const attachments = new Map<string, FakeAttachment>();
  const failures = new Map<string, { left: number; mode: FailMode }[]>();
  const waiters = new Set<(op: LinearOp) => void>();
  const oauthCodes = new Set<string>();
  const refreshTokens = new Set<string>();
  const tokenExchanges: FakeLinear["tokenExchanges"] = [];
  let lastSyncId = 1000;
  let requestsRemaining = 5000;
  const nextSync = () => ++lastSyncId;
  const now = () => new Date().toISOString();

  // ---- store helpers --------------------------------------------------------------------------

  const addTeam = (t: { id: string; key: string; name: string }) => {
    teams.set(t.id, { ...t });
    if ([...states.values()].some((s) => s.teamId === t.id)) return;
    for (const s of STATE_SEED) {
      const id = `${t.id}-state-${s.key}`;
      states.set(id, { id, teamId: t.id, name: s.name, type: s.type, position: s.position, color: s.color, createdAt: now() });
    }
  };
  const statesOf = (teamId: string) => [...states.values()].filter((s) => s.teamId === teamId);
  const stateOfType = (teamId: string, type: WorkflowStateType) =>
    statesOf(teamId)
      .filter((s) => s.type === type)
      .sort((a, b) => a.position - b.position)[0];

  const addIssue: FakeLinear["addIssue"] = (i) => {
    if (!teams.has(i.teamId)) {
      const key = i.identifier.split("-")[0] || "ENG";
      addTeam({ id: i.teamId, key, name: key });
    }
    const labelIds = [...(i.labelIds ?? [])];
    for (const l of i.labels ?? []) {
      const id = l.id ?? `label-${slugify(l.name)}`;
      if (!labels.has(id)) labels.set(id, { id, name: l.name, color: l.color ?? "#5e6ad2", teamId: i.teamId });
      if (!labelIds.includes(id)) labelIds.push(id);
    }
    const number = Number(i.identifier.split("-")[1] ?? 0) || 0;
    const issue: FakeIssue = {
      number,
      description: null,
      stateId: (stateOfType(i.teamId, "unstarted") ?? statesOf(i.teamId)[0]).id,
      branchName: `${i.identifier.toLowerCase()}-${slugify(i.title)}`,
      url: `https://linear.app/${ORG_URL_KEY}/issue/${i.identifier}/${slugify(i.title)}`,
      priority: 0,
      assigneeId: null,
      delegateId: null,
      creatorId: null,
      parentId: null,
      createdAt: now(),
      updatedAt: now(),
      ...stripUndefined(i),
      labelIds,
    } as FakeIssue;
    delete (issue as any).labels;
    issues.set(issue.id, issue);
    return issue;
  };

  const addSession: FakeLinear["addSession"] = (s) => {
    const existing = sessions.get(s.id);
    if (existing) return existing;
    const session: FakeSession = { externalUrls: [], status: "pending", createdAt: now(), updatedAt: now(), ...stripUndefined(s) };
    sessions.set(session.id, session);
    return session;
  };

  const findIssue = (id: string) => issues.get(id) ?? [...issues.values()].find((x) => x.identifier === id);
  const mustIssue = (id: unknown) => {
    const i = typeof id === "string" ? findIssue(id) : undefined;
    if (!i) throw notFound("Issue");
    return i;
  };

  // ---- views (what the GraphQL layer sees) ------------------------------------------------------

  const userView = (id: string): any =>
    id === appUserId
      ? typed("User", {
          id,
          name: "Deckhand",
          displayName: "deckhand",
          email: `${id}@oauthapp.linear.app`,
          app: true,
          isMe: true,
          active: true,
          admin: false,
          owner: false,
          guest: false,
          isAssignable: true,
          isMentionable: true,
          supportsAgentSessions: true,
          canAccessAnyPublicTeam: true,
          createdIssueCount: 0,
          initials: "D",
          avatarBackgroundColor: "#5e6ad2",
          timezone: "UTC",
          inviteHash: "fake",
          url: `https://linear.app/${ORG_URL_KEY}/profiles/deckhand`,
          createdAt: startedAt,
          updatedAt: startedAt,
          organization: () => orgView(),
        })
      : typed("User", {
          id,
          name: `User ${id.slice(0, 8)}`,
          displayName: `user-${id.slice(0, 8)}`,
          email: `${id}@example.com`,
          app: false,
          isMe: false,
          active: true,
          admin: false,
          owner: false,
          guest: false,
          isAssignable: true,
          isMentionable: true,
          supportsAgentSessions: false,
          canAccessAnyPublicTeam: true,
          createdIssueCount: 0,
          initials: "U",
          avatarBackgroundColor: "#4ea7fc",
          timezone: "UTC",
          inviteHash: "fake",
          url: `https://linear.app/${ORG_URL_KEY}/profiles/${id}`,
          createdAt: startedAt,
          updatedAt: startedAt,
          organization: () => orgView(),
        });

  const orgView = (): any =>
    typed("Organization", {
      id: organizationId,
      name: "Fake Org",
      urlKey: ORG_URL_KEY,
      projectStatuses: [],
      createdAt: startedAt,
      updatedAt: startedAt,
      userCount: 1,
      teams: (args: any) => connection("TeamConnection", [...teams.values()], args, teamView),
    });

  const stateView = (s: FakeWorkflowState): any =>
    typed("WorkflowState", {
      id: s.id,
      name: s.name,
      type: s.type,
      position: s.position,
      color: s.color,
      description: null,
      team: () => teamView(teams.get(s.teamId)!),
      createdAt: s.createdAt,
      updatedAt: s.createdAt,
    });
  const stateFilterable = (s: FakeWorkflowState) => {
    const t = teams.get(s.teamId);
    return { ...s, team: { id: s.teamId, key: t?.key, name: t?.name } };
  };

  const teamView = (t: FakeTeam): any =>
    typed("Team", {
      id: t.id,
      key: t.key,
      name: t.name,
      displayName: t.name,
      private: false,
      timezone: "UTC",
      createdAt: startedAt,
      updatedAt: startedAt,
      cyclesEnabled: false,
      triageEnabled: false,
      issueCount: [...issues.values()].filter((i) => i.teamId === t.id).length,
      organization: () => orgView(),
      states: (args: any) => connection("WorkflowStateConnection", statesOf(t.id), args, stateView, stateFilterable),
      labels: (args: any) =>
        connection(
          "IssueLabelConnection",
          [...labels.values()].filter((l) => l.teamId === t.id || l.teamId === null),
          args,
          labelView,
        ),
    });

  const labelView = (l: FakeLabel): any =>
    typed("IssueLabel", {
      id: l.id,
      name: l.name,
      color: l.color,
      isGroup: false,
      description: null,
      team: l.teamId ? { id: l.teamId } : null,
      createdAt: startedAt,
      updatedAt: startedAt,
    });

  const commentView = (c: FakeComment): any =>
    typed("Comment", {
      id: c.id,
      body: c.body,
      issueId: c.issueId,
      issue: () => issueView(issues.get(c.issueId)!),
      parentId: c.parentId,
      parent: c.parentId ? { id: c.parentId } : null,
      user: c.userId ? () => userView(c.userId) : null,
      reactions: [],
      reactionData: [],
      url: `${issues.get(c.issueId)?.url ?? ""}#comment-${c.id.slice(0, 8)}`,
      createdAt: c.createdAt,
      updatedAt: c.createdAt,
    });

  const attachmentView = (a: FakeAttachment): any =>
    typed("Attachment", {
      id: a.id,
      title: a.title,
      subtitle: a.subtitle,
      url: a.url,
      metadata: a.metadata ?? {},
      groupBySource: false,
      issue: () => issueView(issues.get(a.issueId)!),
      createdAt: a.createdAt,
      updatedAt: a.updatedAt,
    });

  const issueView = (i: FakeIssue): any =>
    typed("Issue", {
      ...i,
      priorityLabel: ["No priority", "Urgent", "High", "Medium", "Low"][i.priority] ?? "No priority",
      previousIdentifiers: [],
      reactions: [],
      reactionData: [],
      trashed: false,
      customerTicketCount: 0,
      sortOrder: 0,
      prioritySortOrder: 0,
      boardOrder: 0,
      inheritsSharedAccess: false,
      sharedAccess: typed("IssueSharedAccess", {
        isShared: false,
        sharedWithCount: 0,
        viewerHasOnlySharedAccess: false,
        disallowedIssueFields: [],
        sharedWithUsers: [],
      }),
      team: () => teamView(teams.get(i.teamId)!),
      state: () => stateView(states.get(i.stateId)!),
      assignee: i.assigneeId ? () => userView(i.assigneeId!) : null,
      delegate: i.delegateId ? () => userView(i.delegateId!) : null,
      creator: i.creatorId ? () => userView(i.creatorId!) : null,
      parent: i.parentId ? { id: i.parentId } : null,
      labels: (args: any) =>
        connection(
          "IssueLabelConnection",
          i.labelIds.map((id) => labels.get(id)).filter((x): x is FakeLabel => !!x),
          args,
          labelView,
        ),
      comments: (args: any) =>
        connection(
          "CommentConnection",
          comments.filter((c) => c.issueId === i.id),
          args,
          commentView,
        ),
      attachments: (args: any) =>
        connection(
          "AttachmentConnection",
          [...attachments.values()].filter((a) => a.issueId === i.id),
          args,
          attachmentView,
        ),
    });

  const contentTypename: Record<string, string> = {
    thought: "AgentActivityThoughtContent",
    action: "AgentActivityActionContent",
    elicitation: "AgentActivityElicitationContent",
    response: "AgentActivityResponseContent",
    error: "AgentActivityErrorContent",
    prompt: "AgentActivityPromptContent",
  };
  const activityView = (a: FakeActivity): any =>
    typed("AgentActivity", {
      id: a.id,
      agentSession: { id: a.agentSessionId },
      content: typed(contentTypename[a.content?.type] ?? "AgentActivityThoughtContent", { ...a.content }),
      ephemeral: a.ephemeral ?? false,
      signal: a.signal ?? null,
      signalMetadata: a.signalMetadata === undefined ? null : JSON.stringify(a.signalMetadata),
      sourceComment: null,
      user: { id: appUserId },
      createdAt: new Date(a.at).toISOString(),
      updatedAt: new Date(a.at).toISOString(),
    });

  const sessionView = (s: FakeSession): any =>
    typed("AgentSession", {
      id: s.id,
      status: s.status,
      type: "commentThread",
      // `JSON` scalars (stringified JSON) in Linear's schema; the SDK's model runs JSON.parse on them.
      plan: s.plan === undefined ? null : JSON.stringify(s.plan),
      externalUrls: JSON.stringify(s.externalUrls),
      context: JSON.stringify({}),
      sourceMetadata: null,
      externalLink: s.externalLink ?? null,
      externalLinks: s.externalUrls.map((u) => typed("AgentSessionExternalLink", { ...u })),
      summary: s.summary ?? null,
      url: `${issues.get(s.issueId)?.url ?? `https://linear.app/${ORG_URL_KEY}`}#agent-session-${s.id.slice(0, 8)}`,
      slugId: s.id.slice(0, 8),
      appUser: () => userView(appUserId),
      creator: s.creatorId ? () => userView(s.creatorId!) : null,
      issue: issues.has(s.issueId) ? () => issueView(issues.get(s.issueId)!) : { id: s.issueId },
      comment: s.commentId ? { id: s.commentId } : null,
      sourceComment: s.commentId ? { id: s.commentId } : null,
      createdAt: s.createdAt,
      updatedAt: s.updatedAt,
      startedAt: s.createdAt,
      activities: (args: any) =>
        connection(
          "AgentActivityConnection",
          activities.filter((a) => a.agentSessionId === s.id),
          args,
          activityView,
        ),
    });

  // ---- mutations ------------------------------------------------------------------------------

  const ACTIVITY_TYPES = new Set(["thought", "action", "elicitation", "response", "error", "prompt"]);
  const SIGNALS = new Set(["auth", "continue", "select", "stop"]);
  const PLAN_STATUSES = new Set(["pending", "inProgress", "completed", "canceled"]);

  const validateUrls = (list: unknown, field: string) => {
    if (list === undefined || list === null) return;
    if (!Array.isArray(list)) throw invalidInput(`${field} must be a list`);
    for (const u of list) {
      if (!isPlainObject(u) || typeof u.label !== "string" || typeof u.url !== "string")
        throw invalidInput(`${field} entries must be {label, url}`);
    }
  };

  const mutations = {
    agentActivityCreate({ input }: any) {
      if (!isPlainObject(input)) throw invalidInput("input is required");
      const { id, agentSessionId, content, ephemeral, signal, signalMetadata } = input as any;
      if (typeof agentSessionId !== "string" || !agentSessionId) throw invalidInput("agentSessionId is required");
      if (!isPlainObject(content) || !ACTIVITY_TYPES.has(content.type as string))
        throw invalidInput(`content.type must be one of ${[...ACTIVITY_TYPES].join(", ")}`);
      if (content.type === "action") {
        if (typeof content.action !== "string" || typeof content.parameter !== "string")
          throw invalidInput("An action activity needs string `action` and `parameter`");
      } else if (typeof content.body !== "string") {
        throw invalidInput(`A ${content.type} activity needs a string \`body\``);
      }
      if (ephemeral && content.type !== "thought" && content.type !== "action")
        throw invalidInput("Only thought and action activities can be ephemeral");
      if (signal !== undefined && signal !== null && !SIGNALS.has(signal)) throw invalidInput(`Unknown signal ${signal}`);

      const existing = id ? activities.find((a) => a.id === id) : undefined;
      if (existing) {
        return typed("AgentActivityPayload", { success: true, lastSyncId: nextSync(), agentActivity: activityView(existing) });
      }
      const session = sessions.get(agentSessionId) ?? addSession({ id: agentSessionId, issueId: "" });
      const activity: FakeActivity = {
        id: typeof id === "string" && id ? id : randomUUID(),
        agentSessionId,
        content: { ...content },
        ...(ephemeral !== undefined && ephemeral !== null ? { ephemeral: Boolean(ephemeral) } : {}),
        ...(signal ? { signal } : {}),
        ...(signalMetadata !== undefined ? { signalMetadata } : {}),
        at: Date.now(),
      };
      activities.push(activity);
      session.status =
        content.type === "response"
          ? "complete"
          : content.type === "error"
            ? "error"
            : content.type === "elicitation"
              ? "awaitingInput"
              : "active";
      session.updatedAt = now();
      return typed("AgentActivityPayload", { success: true, lastSyncId: nextSync(), agentActivity: activityView(activity) });
    },

    agentSessionUpdate({ id, input }: any) {
      const s = sessions.get(id);
      if (!s) throw notFound("AgentSession");
      const inp = (input ?? {}) as Record<string, any>;
      if (inp.plan !== undefined && inp.plan !== null) {
        if (!Array.isArray(inp.plan)) throw invalidInput("plan must be a list of {content, status}");
        for (const step of inp.plan) {
          if (!isPlainObject(step) || typeof step.content !== "string" || !PLAN_STATUSES.has(step.status as string))
            throw invalidInput(`plan entries must be {content, status: ${[...PLAN_STATUSES].join("|")}}`);
        }
      }
      validateUrls(inp.externalUrls, "externalUrls");
      validateUrls(inp.addedExternalUrls, "addedExternalUrls");
      if ("plan" in inp) s.plan = inp.plan ?? undefined;
      if (inp.externalUrls) s.externalUrls = inp.externalUrls.map((u: any) => ({ label: u.label, url: u.url }));
      for (const u of inp.addedExternalUrls ?? []) {
        const i = s.externalUrls.findIndex((x) => x.url === u.url);
        if (i >= 0) s.externalUrls[i] = { label: u.label, url: u.url };
        else s.externalUrls.push({ label: u.label, url: u.url });
      }
      for (const url of inp.removedExternalUrls ?? []) s.externalUrls = s.externalUrls.filter((x) => x.url !== url);
      if ("externalLink" in inp) s.externalLink = inp.externalLink ?? undefined;
      if ("summary" in inp) s.summary = inp.summary ?? undefined;
      s.updatedAt = now();
      return typed("AgentSessionPayload", { success: true, lastSyncId: nextSync(), agentSession: sessionView(s) });
    },

    agentSessionCreateOnIssue({ input }: any) {
      const issue = mustIssue(input?.issueId);
      validateUrls(input?.externalUrls, "externalUrls");
      const s = addSession({
        id: randomUUID(),
        issueId: issue.id,
        externalUrls: (input?.externalUrls ?? []).map((u: any) => ({ label: u.label, url: u.url })),
        externalLink: input?.externalLink ?? undefined,
        creatorId: appUserId,
      });
      return typed("AgentSessionPayload", { success: true, lastSyncId: nextSync(), agentSession: sessionView(s) });
    },

    agentSessionCreateOnComment({ input }: any) {
      const c = comments.find((x) => x.id === input?.commentId);
      if (!c) throw notFound("Comment");
      const s = addSession({
        id: randomUUID(),
        issueId: c.issueId,
        commentId: c.id,
        externalUrls: (input?.externalUrls ?? []).map((u: any) => ({ label: u.label, url: u.url })),
        externalLink: input?.externalLink ?? undefined,
        creatorId: appUserId,
      });
      return typed("AgentSessionPayload", { success: true, lastSyncId: nextSync(), agentSession: sessionView(s) });
    },

    issueUpdate({ id, input }: any) {
      const issue = mustIssue(id);
      const inp = (input ?? {}) as Record<string, any>;
      if (inp.stateId !== undefined) {
        const st = states.get(inp.stateId);
        if (!st || st.teamId !== issue.teamId) throw invalidInput("stateId does not refer to a workflow state of the issue's team");
        issue.stateId = st.id;
      }
      for (const k of ["assigneeId", "delegateId", "title", "description", "priority", "parentId"] as const) {
        if (k in inp) (issue as any)[k] = inp[k];
      }
      if (Array.isArray(inp.labelIds)) issue.labelIds = [...inp.labelIds];
      if (Array.isArray(inp.addedLabelIds)) issue.labelIds = [...new Set([...issue.labelIds, ...inp.addedLabelIds])];
      if (Array.isArray(inp.removedLabelIds)) issue.labelIds = issue.labelIds.filter((l) => !inp.removedLabelIds.includes(l));
      issue.updatedAt = now();
      return typed("IssuePayload", { success: true, lastSyncId: nextSync(), issue: issueView(issue) });
    },

    commentCreate({ input }: any) {
      const inp = (input ?? {}) as Record<string, any>;
      const issue = mustIssue(inp.issueId);
      if (typeof inp.body !== "string" || !inp.body) throw invalidInput("body is required");
      if (inp.parentId && !comments.some((c) => c.id === inp.parentId && c.issueId === issue.id)) throw notFound("Comment");
      const c: FakeComment = {
        id: typeof inp.id === "string" ? inp.id : randomUUID(),
        issueId: issue.id,
        body: inp.body,
        parentId: inp.parentId ?? null,
        userId: appUserId,
        createdAt: now(),
        at: Date.now(),
      };
      const dup = comments.find((x) => x.id === c.id);
      if (dup) return typed("CommentPayload", { success: true, lastSyncId: nextSync(), comment: commentView(dup) });
      comments.push(c);
      return typed("CommentPayload", { success: true, lastSyncId: nextSync(), comment: commentView(c) });
    },

    attachmentCreate({ input }: any) {
      const inp = (input ?? {}) as Record<string, any>;
      return upsertAttachment(inp.issueId, inp.url, inp.title, inp);
    },

    attachmentLinkURL(args: any) {
      return upsertAttachment(args.issueId, args.url, args.title ?? args.url, args);
    },
  };

  const upsertAttachment = (issueId: unknown, url: unknown, title: unknown, inp: Record<string, any>) => {
    const issue = mustIssue(issueId);
    if (typeof url !== "string" || !url) throw invalidInput("url is required");
    if (typeof title !== "string" || !title) throw invalidInput("title is required");
    let a = [...attachments.values()].find((x) => x.issueId === issue.id && x.url === url);
    if (a) {
      a.title = title;
      if ("subtitle" in inp) a.subtitle = inp.subtitle ?? null;
      if ("metadata" in inp) a.metadata = inp.metadata ?? null;
      if ("iconUrl" in inp) a.iconUrl = inp.iconUrl ?? null;
      a.updatedAt = now();
      a.writes++;
    } else {
      a = {
        id: typeof inp.id === "string" && inp.id ? inp.id : randomUUID(),
        issueId: issue.id,
        title,
        subtitle: inp.subtitle ?? null,
        url,
        metadata: inp.metadata ?? null,
        iconUrl: inp.iconUrl ?? null,
        createdAt: now(),
        updatedAt: now(),
        writes: 1,
      };
      attachments.set(a.id, a);
    }
    return typed("AttachmentPayload", { success: true, lastSyncId: nextSync(), attachment: attachmentView(a) });
  };

  const byId = <T>(map: Map<string, T>, entity: string, view: (x: T) => unknown) => (args: any) => {
    const x = map.get(args?.id);
    if (!x) throw notFound(entity);
    return view(x);
  };

  const queryRoot: any = {
    viewer: () => userView(appUserId),
    organization: () => orgView(),
    user: (args: any) => userView(String(args?.id ?? appUserId)),
    issue: (args: any) => issueView(mustIssue(args?.id)),
    team: (args: any) => {
      const t = teams.get(args?.id) ?? [...teams.values()].find((x) => x.key === args?.id);
      if (!t) throw notFound("Team");
      return teamView(t);
    },
    teams: (args: any) => connection("TeamConnection", [...teams.values()], args, teamView),
    workflowState: byId(states, "WorkflowState", stateView),
    workflowStates: (args: any) => connection("WorkflowStateConnection", [...states.values()], args, stateView, stateFilterable),
    comment: (args: any) => {
      const c = comments.find((x) => x.id === args?.id);
      if (!c) throw notFound("Comment");
      return commentView(c);
    },
    attachment: byId(attachments, "Attachment", attachmentView),
    agentActivity: (args: any) => {
      const a = activities.find((x) => x.id === args?.id);
      if (!a) throw notFound("AgentActivity");
      return activityView(a);
    },
    agentSession: byId(sessions, "AgentSession", sessionView),
  };

  // ---- HTTP -----------------------------------------------------------------------------------

  const rateHeaders = (res: ServerResponse, limited = false, retryAfterSec = 1) => {
    const reset = Date.now() + (limited ? retryAfterSec * 1000 : 3600_000);
    res.setHeader("X-RateLimit-Requests-Limit", "5000");
    res.setHeader("X-RateLimit-Requests-Remaining", String(limited ? 0 : Math.max(0, --requestsRemaining)));
    res.setHeader("X-RateLimit-Requests-Reset", String(reset));
    res.setHeader("X-RateLimit-Complexity-Limit", "3000000");
    res.setHeader("X-RateLimit-Complexity-Remaining", limited ? "0" : "2999000");
    res.setHeader("X-RateLimit-Complexity-Reset", String(reset));
    res.setHeader("X-Complexity", "10");
    if (limited) res.setHeader("Retry-After", String(retryAfterSec));
  };

  const sendJson = (res: ServerResponse, status: number, body: unknown) => {
    res.statusCode = status;
    res.setHeader("Content-Type", "application/json; charset=utf-8");
    res.end(JSON.stringify(body));
  };

  const record = (op: LinearOp) => {
    ops.push(op);
    for (const w of [...waiters]) w(op);
  };

  const takeFailure = (operation: string): FailMode | undefined => {
    for (const key of [operation, "*"]) {
      const q = failures.get(key);
      if (!q?.length) continue;
      const f = q[0];
      f.left--;
      if (f.left <= 0) q.shift();
      return f.mode;
    }
    return undefined;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/oauth/token" && req.method === "POST") {
      const form = new URLSearchParams(await readBody(req));
      const grant = form.get("grant_type") ?? "";
      const code = grant === "refresh_token" ? (form.get("refresh_token") ?? "") : (form.get("code") ?? "");
      const client = !!form.get("client_id") && !!form.get("client_secret");
      const ok = client && ((grant === "authorization_code" && oauthCodes.delete(code)) || (grant === "refresh_token" && refreshTokens.delete(code)));
      tokenExchanges.push({ grant, code, clientId: form.get("client_id") ?? "", redirectUri: form.get("redirect_uri") ?? "", ok });
      if (!ok) return sendJson(res, 400, { error: "invalid_grant", error_description: "The code is invalid or expired" });
      const refresh = `rt_${randomUUID().replace(/-/g, "")}`;
      refreshTokens.add(refresh);
      return sendJson(res, 200, { access_token: token, refresh_token: refresh, token_type: "Bearer", expires_in: 86399, scope: "read write app:assignable app:mentionable" });
    }
    if (path !== "/graphql") return sendJson(res, 404, { errors: [{ message: `Not found: ${path}` }] });
    if (req.method !== "POST")
      return sendJson(res, 400, { errors: [{ message: "GET query must be provided.", extensions: { code: "BAD_REQUEST" } }] });
    let raw: string;
    try {
      raw = await readBody(req);
    } catch {
      return sendJson(res, 413, { errors: [{ message: "Request entity too large" }] });
    }
    let body: any;
    try {
      body = JSON.parse(raw);
    } catch {
      return sendJson(res, 400, { errors: [{ message: "Unexpected token in JSON body", extensions: { code: "BAD_REQUEST" } }] });
    }
    const query = typeof body?.query === "string" ? body.query : "";
    const variables = isPlainObject(body?.variables) ? body.variables : {};
    const auth = typeof req.headers.authorization === "string" ? req.headers.authorization : undefined;

    let doc: ParsedDoc | undefined;
    let parseError: string | undefined;
    try {
      doc = parseDocument(query);
    } catch (e) {
      parseError = (e as Error).message;
    }
    const opDef = doc
      ? (typeof body?.operationName === "string" ? doc.ops.find((o) => o.name === body.operationName) : undefined) ?? doc.ops[0]
      : undefined;
    const firstRoot = opDef?.sel.find((s) => s.k === "field") as { name: string } | undefined;
    const operation = opDef?.name ?? firstRoot?.name ?? "<unknown>";
    const op: LinearOp = { operation, variables, at: Date.now(), auth, query };

    const answer = (status: number, payload: unknown, error?: string) => {
      op.status = status;
      if (error) op.error = error;
      record(op);
      sendJson(res, status, payload);
    };
    const gqlErrors = (status: number, errors: { message: string; extensions?: Record<string, unknown>; path?: string[] }[]) =>
      answer(status, { data: null, errors }, errors[0]?.message);

    // 1. Injected failures
    const failure = takeFailure(operation);
    if (failure) {
      if ("rateLimited" in failure) {
        const retry = failure.retryAfterSec ?? 1;
        rateHeaders(res, true, retry);
        return gqlErrors(failure.status ?? 400, [
          {
            message: "Rate limit exceeded. Only 5000 requests are allowed per 1 hour.",
            extensions: {
              code: "RATELIMITED",
              type: "ratelimited",
              statusCode: 429,
              userError: true,
              userPresentableMessage: "Rate limit exceeded. Please try again later.",
            },
          },
        ]);
      }
      if ("graphqlError" in failure) {
        rateHeaders(res);
        return gqlErrors(failure.status ?? 400, [
          {
            message: failure.graphqlError,
            extensions: {
              code: failure.code ?? "INPUT_ERROR",
              type: failure.type ?? "invalid input",
              userError: true,
              userPresentableMessage: failure.graphqlError,
            },
            path: firstRoot ? [firstRoot.name] : undefined,
          },
        ]);
      }
      // A bare HTTP failure (e.g. a gateway error): plain text, no GraphQL body.
      op.status = failure.status;
      op.error = `HTTP ${failure.status}`;
      record(op);
      res.statusCode = failure.status;
      res.setHeader("Content-Type", "text/plain; charset=utf-8");
      return res.end(failure.status >= 500 ? "Internal Server Error" : "Error");
    }

    // 2. Authentication
    if (auth !== `Bearer ${token}` && auth !== apiKey) {
      return gqlErrors(401, [
        {
          message: "Authentication required, not authenticated",
          extensions: {
            code: "AUTHENTICATION_ERROR",
            type: "authentication error",
            statusCode: 401,
            userError: true,
            userPresentableMessage: "You need to authenticate to access this operation.",
          },
        },
      ]);
    }
    rateHeaders(res);

    // 3. Routing
    if (!doc || !opDef) return gqlErrors(400, [{ message: parseError ?? "Must provide query string.", extensions: { code: "GRAPHQL_PARSE_FAILED", type: "graphql error" } }]);
    if (opDef.name && sdkOperations().has(opDef.name) && !SUPPORTED_OPERATIONS.has(opDef.name)) {
      const msg = `The fake Linear API does not implement the SDK operation "${opDef.name}" (tests/fakes/linear.ts SUPPORTED_OPERATIONS).`;
      return gqlErrors(400, [{ message: msg, extensions: { code: "GRAPHQL_VALIDATION_FAILED", type: "graphql error", userPresentableMessage: msg } }]);
    }
    const root = opDef.kind === "mutation" ? mutations : opDef.kind === "query" ? queryRoot : {};
    const typeName = opDef.kind === "mutation" ? "Mutation" : opDef.kind === "query" ? "Query" : "Subscription";
    for (const s of opDef.sel) {
      if (s.k === "field" && s.name !== "__typename" && typeof (root as any)[s.name] !== "function") {
        const msg = `Cannot query field "${s.name}" on type "${typeName}".`;
        return gqlErrors(400, [{ message: msg, extensions: { code: "GRAPHQL_VALIDATION_FAILED", type: "graphql error", userPresentableMessage: msg } }]);
      }
    }

    // 4. Execute
    try {
      const data = execute(doc, opDef.sel, { ...root, __typename: typeName }, variables);
      answer(200, { data });
    } catch (e) {
      if (e instanceof GqlError) {
        return gqlErrors(e.status, [{ message: e.message, extensions: e.extensions, path: firstRoot ? [firstRoot.name] : undefined }]);
      }
      const msg = (e as Error).message ?? String(e);
      return gqlErrors(500, [{ message: `Fake Linear internal error: ${msg}`, extensions: { code: "INTERNAL_SERVER_ERROR", type: "internal error" } }]);
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) sendJson(res, 500, { errors: [{ message: String(e) }] });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;

  const fake: FakeLinear = {
    apiUrl: `http://127.0.0.1:${port}/graphql`,
    ops,
    activities,
    sessions,
    issues,
    teams,
    states,
    labels,
    comments,
    attachments,
    addIssue,
    addTeam,
    statesOf,
    stateOfType,
    addSession,
    clearFailures() {
      failures.clear();
    },
    failNext(operation, n, mode) {
      if (n <= 0) return;
      const q = failures.get(operation) ?? [];
      q.push({ left: n, mode });
      failures.set(operation, q);
    },
    waitFor(pred, timeoutMs = 5000) {
      const hit = ops.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const w = (op: LinearOp) => {
          if (!pred(op)) return;
          waiters.delete(w);
          clearTimeout(timer);
          resolve(op);
        };
        const timer = setTimeout(() => {
          waiters.delete(w);
          const seen = ops.slice(-20).map((o) => `${o.operation}(${o.status ?? "?"})`).join(", ");
          reject(new Error(`FakeLinear.waitFor: no matching operation within ${timeoutMs} ms; last ops: [${seen}]`));
        }, timeoutMs);
        waiters.add(w);
      });
    },
    opsNamed: (operation) => ops.filter((o) => o.operation === operation),
    token,
    apiKey,
    appUserId,
    organizationId,
    oauthCode() {
      const c = `code_${randomUUID().replace(/-/g, "")}`;
      oauthCodes.add(c);
      return c;
    },
    tokenExchanges,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return fake;
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

// ---------------------------------------------------------------------------------------------
// Signed webhooks
// ---------------------------------------------------------------------------------------------

/** Hex HMAC-SHA256 of the raw body: the value of the `linear-signature` header. */
export function signLinearBody(secret: string, rawBody: string): string {
  return createHmac("sha256", secret).update(rawBody).digest("hex");
}

export interface WebhookIssueInput {
  id: string;
  identifier: string;
  title: string;
  description?: string | null;
  teamId: string;
  team?: { id: string; key: string; name: string };
  url?: string;
}

function childIssue(issue: WebhookIssueInput) {
  const key = issue.identifier.split("-")[0] || "ENG";
  return {
    id: issue.id,
    identifier: issue.identifier,
    title: issue.title,
    ...(issue.description !== undefined ? { description: issue.description } : {}),
    teamId: issue.teamId,
    team: issue.team ?? { id: issue.teamId, key, name: key },
    url: issue.url ?? `https://linear.app/${ORG_URL_KEY}/issue/${issue.identifier}/${slugify(issue.title)}`,
  };
}

function webhookUser(id: string) {
  return {
    id,
    name: `User ${id.slice(0, 8)}`,
    email: `${id}@example.com`,
    url: `https://linear.app/${ORG_URL_KEY}/profiles/${id}`,
    avatarUrl: null,
  };
}

/** A `promptContext` shaped like Linear's (an XML-ish summary of the issue and the triggering comment). */
export function formatPromptContext(issue: WebhookIssueInput, comment?: { id: string; body: string }, authorName = "A user"): string {
  const c = childIssue(issue);
  const parts = [
    `<issue identifier="${c.identifier}">`,
    `<title>${c.title}</title>`,
    ...(issue.description ? [`<description>${issue.description}</description>`] : []),
    `<team name="${c.team.name}"/>`,
    `</issue>`,
  ];
  if (comment) {
    parts.push(
      "",
      `<primary-directive-thread comment-id="${comment.id}">`,
      `<comment author="${authorName}">`,
      comment.body,
      `</comment>`,
      `</primary-directive-thread>`,
    );
  }
  return parts.join("\n");
}

/** `AgentSessionEvent` / `created`: a mention or a delegation opened a session. */
export function agentSessionCreatedPayload(o: {
  sessionId: string;
  issue: WebhookIssueInput;
  comment?: { id: string; body: string };
  promptContext?: string;
  appUserId: string;
  organizationId: string;
  webhookTimestamp?: number;
  creatorId?: string;
  webhookId?: string;
  oauthClientId?: string;
  guidance?: { body: string; origin?: any }[];
  previousComments?: { id: string; body: string; userId?: string }[];
}): any {
  const ts = o.webhookTimestamp ?? Date.now();
  const at = new Date(ts).toISOString();
  const creatorId = o.creatorId ?? randomUUID();
  const issue = childIssue(o.issue);
  return {
    type: "AgentSessionEvent",
    action: "created",
    createdAt: at,
    organizationId: o.organizationId,
    oauthClientId: o.oauthClientId ?? "fake-oauth-client",
    appUserId: o.appUserId,
    webhookId: o.webhookId ?? "fake-webhook",
    webhookTimestamp: ts,
    agentSession: {
      id: o.sessionId,
      type: "commentThread",
      status: "pending",
      appUserId: o.appUserId,
      organizationId: o.organizationId,
      creatorId,
      creator: webhookUser(creatorId),
      issueId: issue.id,
      issue,
      ...(o.comment
        ? { commentId: o.comment.id, comment: { id: o.comment.id, body: o.comment.body, issueId: issue.id, userId: creatorId } }
        : {}),
      sourceMetadata: null,
      summary: null,
      url: `${issue.url}#agent-session-${o.sessionId.slice(0, 8)}`,
      createdAt: at,
      updatedAt: at,
      startedAt: null,
      endedAt: null,
      archivedAt: null,
    },
    promptContext: o.promptContext ?? formatPromptContext(o.issue, o.comment),
    previousComments: (o.previousComments ?? []).map((c) => ({ id: c.id, body: c.body, issueId: issue.id, userId: c.userId ?? creatorId })),
    guidance: (o.guidance ?? []).map((g) => ({ body: g.body, origin: g.origin ?? { type: "workspace" } })),
  };
}

/** `AgentSessionEvent` / `prompted`: the user wrote to the session (text in `agentActivity.content.body`). */
export function agentSessionPromptedPayload(o: {
  sessionId: string;
  issueId: string;
  body: string;
  activityId?: string;
  signal?: "stop";
  appUserId: string;
  organizationId: string;
  webhookTimestamp?: number;
  userId?: string;
  issue?: WebhookIssueInput;
  webhookId?: string;
  oauthClientId?: string;
  sourceCommentId?: string;
}): any {
  const ts = o.webhookTimestamp ?? Date.now();
  const at = new Date(ts).toISOString();
  const userId = o.userId ?? randomUUID();
  const activityId = o.activityId ?? randomUUID();
  return {
    type: "AgentSessionEvent",
    action: "prompted",
    createdAt: at,
    organizationId: o.organizationId,
    oauthClientId: o.oauthClientId ?? "fake-oauth-client",
    appUserId: o.appUserId,
    webhookId: o.webhookId ?? "fake-webhook",
    webhookTimestamp: ts,
    agentSession: {
      id: o.sessionId,
      type: "commentThread",
      status: "active",
      appUserId: o.appUserId,
      organizationId: o.organizationId,
      issueId: o.issueId,
      ...(o.issue ? { issue: childIssue(o.issue) } : {}),
      creatorId: userId,
      createdAt: at,
      updatedAt: at,
    },
    agentActivity: {
      id: activityId,
      agentSessionId: o.sessionId,
      content: { type: "prompt", body: o.body },
      ...(o.signal ? { signal: o.signal, signalMetadata: null } : {}),
      ...(o.sourceCommentId ? { sourceCommentId: o.sourceCommentId } : {}),
      userId,
      user: webhookUser(userId),
      createdAt: at,
      updatedAt: at,
    },
  };
}

/** Classic `Issue` / `update` webhook that (re)assigns the issue (or delegates it) to `assigneeId`. */
export function issueAssignedPayload(o: {
  issue: WebhookIssueInput & { stateId?: string; state?: { id: string; name: string; type: string; color?: string }; number?: number };
  assigneeId: string;
  previousAssigneeId?: string | null;
  /** "delegate" models an app:assignable app (Issue.delegate set, the human stays assignee). */
  field?: "assignee" | "delegate";
  actorId?: string;
  organizationId: string;
  webhookTimestamp?: number;
  webhookId?: string;
}): any {
  const ts = o.webhookTimestamp ?? Date.now();
  const at = new Date(ts).toISOString();
  const issue = childIssue(o.issue);
  const field = o.field ?? "assignee";
  const state = o.issue.state ?? { id: o.issue.stateId ?? `${issue.teamId}-state-todo`, name: "Todo", type: "unstarted", color: "#e2e2e2" };
  const actorId = o.actorId ?? randomUUID();
  return {
    action: "update",
    type: "Issue",
    createdAt: at,
    organizationId: o.organizationId,
    webhookId: o.webhookId ?? "fake-webhook",
    webhookTimestamp: ts,
    url: issue.url,
    actor: { ...webhookUser(actorId), type: "user" },
    data: {
      ...issue,
      description: o.issue.description ?? null,
      number: o.issue.number ?? (Number(issue.identifier.split("-")[1]) || 0),
      priority: 0,
      priorityLabel: "No priority",
      prioritySortOrder: 0,
      sortOrder: 0,
      stateId: state.id,
      state: { color: "#e2e2e2", ...state },
      labelIds: [],
      labels: [],
      subscriberIds: [],
      previousIdentifiers: [],
      releases: [],
      reactionData: [],
      ...(field === "assignee"
        ? { assigneeId: o.assigneeId, assignee: webhookUser(o.assigneeId) }
        : { delegateId: o.assigneeId, delegate: webhookUser(o.assigneeId) }),
      creatorId: actorId,
      createdAt: at,
      updatedAt: at,
    },
    updatedFrom: { [`${field}Id`]: o.previousAssigneeId ?? null, updatedAt: new Date(ts - 1000).toISOString() },
  };
}

/** Classic `Comment` / `create` webhook. */
export function commentCreatedPayload(o: {
  comment: { id: string; body: string; issueId: string; parentId?: string | null; userId?: string };
  issue?: WebhookIssueInput;
  botActor?: any;
  organizationId: string;
  webhookTimestamp?: number;
  webhookId?: string;
}): any {
  const ts = o.webhookTimestamp ?? Date.now();
  const at = new Date(ts).toISOString();
  const userId = o.comment.userId ?? randomUUID();
  const issue = o.issue ? childIssue(o.issue) : undefined;
  return {
    action: "create",
    type: "Comment",
    createdAt: at,
    organizationId: o.organizationId,
    webhookId: o.webhookId ?? "fake-webhook",
    webhookTimestamp: ts,
    url: issue ? `${issue.url}#comment-${o.comment.id.slice(0, 8)}` : undefined,
    actor: { ...webhookUser(userId), type: "user" },
    data: {
      id: o.comment.id,
      body: o.comment.body,
      issueId: o.comment.issueId,
      ...(issue ? { issue } : {}),
      parentId: o.comment.parentId ?? null,
      userId,
      user: webhookUser(userId),
      botActor: o.botActor ?? null,
      reactionData: [],
      createdAt: at,
      updatedAt: at,
    },
  };
}

/**
 * POSTs a payload the way Linear does: raw JSON body signed with HMAC-SHA256 in `linear-signature`,
 * plus `linear-delivery`, `linear-event` and `user-agent: Linear-Webhook`.
 * `timestampMs` overrides the signed body's `webhookTimestamp` (e.g. to send a stale one).
 * `signature: null` omits the signature header; `badSignature` signs with a wrong secret.
 */
export async function postLinearWebhook(
  url: string,
  secret: string,
  payload: any,
  opts: {
    deliveryId?: string;
    badSignature?: boolean;
    timestampMs?: number;
    signature?: string | null;
    method?: string;
    headers?: Record<string, string>;
    rawBody?: string;
  } = {},
): Promise<{ status: number; body: string; ms: number; deliveryId: string }> {
  const body =
    opts.rawBody ??
    (typeof payload === "string"
      ? payload
      : JSON.stringify(opts.timestampMs !== undefined ? { ...payload, webhookTimestamp: opts.timestampMs } : payload));
  const deliveryId = opts.deliveryId ?? randomUUID();
  const signature =
    opts.signature !== undefined ? opts.signature : signLinearBody(opts.badSignature ? `${secret}-wrong` : secret, body);
  const headers: Record<string, string> = {
    "content-type": "application/json; charset=utf-8",
    "linear-delivery": deliveryId,
    "linear-event": typeof payload === "object" && payload?.type ? String(payload.type) : "Unknown",
    "user-agent": "Linear-Webhook",
    ...(signature !== null ? { "linear-signature": signature } : {}),
    ...opts.headers,
  };
  const started = performance.now();
  const method = opts.method ?? "POST";
  const res = await fetch(url, { method, headers, body: method === "GET" || method === "HEAD" ? undefined : body });
  const text = await res.text();
  return { status: res.status, body: text, ms: performance.now() - started, deliveryId };
}
