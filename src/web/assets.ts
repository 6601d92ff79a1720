/**
 * The dashboard's static files: our own CSS/JS (src/web/assets) and diff2html's prebuilt bundle and stylesheet
 * straight from node_modules (no build step). Read once, kept in memory with a gzip copy and an ETag.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

function packageDir(name: string): string | null {
  try {
    return path.dirname(require.resolve(`${name}/package.json`));
  } catch {
    return null;
  }
}

/** Public name → file on disk (null when an optional package is missing: served empty). */
function sources(): Record<string, string | null> {
  const d2h = packageDir("diff2html");
  const hljs = packageDir("highlight.js");
  return {
    "dashboard.css": path.join(here, "assets", "dashboard.css"),
    "dashboard.js": path.join(here, "assets", "dashboard.js"),
    "diff2html.min.css": d2h && path.join(d2h, "bundles", "css", "diff2html.min.css"),
    "diff2html-ui-slim.min.js": d2h && path.join(d2h, "bundles", "js", "diff2html-ui-slim.min.js"),
    "highlight.css": hljs && path.join(hljs, "styles", "github.min.css"),
  };
}

export interface Asset {
  body: Buffer;
  gzip: Buffer;
  etag: string;
  type: string;
}

const TYPES: Record<string, string> = { ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8" };
const cache = new Map<string, Asset>();

export function asset(name: string): Asset | null {
  const hit = cache.get(name);
  if (hit) return hit;
  const all = sources();
  if (!Object.hasOwn(all, name)) return null;
  const file = all[name];
  let body = Buffer.alloc(0);
  if (file) {
    try {
      body = fs.readFileSync(file);
    } catch {
      /* optional file missing: serve empty */
    }
  }
  const a: Asset = {
    body,
    gzip: zlib.gzipSync(body, { level: 9 }),
    etag: `"${crypto.createHash("sha1").update(body).digest("hex").slice(0, 16)}"`,
    type: TYPES[path.extname(name)] ?? "application/octet-stream",
  };
  cache.set(name, a);
  return a;
}
