/** The page shell every dashboard page shares: no inline script or style (the CSP forbids both). */
import { asset } from "./assets.ts";
import { esc } from "./html.ts";

export interface ShellOptions {
  title: string;
  body: string;
  /** Extra stylesheets / scripts under /assets/ (e.g. the diff renderer's). */
  styles?: string[];
  scripts?: string[];
  /** Attributes on <body>: data-* the client script reads. */
  bodyAttrs?: Record<string, string>;
  /** Signed-in name for the header (null: signed in without a name; undefined: not signed in). */
  user?: string | null;
  csrf?: string;
}

/** `?v=` of an asset: its content hash, so a changed file is fetched again despite the long cache lifetime. */
export const assetUrl = (name: string) => `/assets/${name}?v=${version(name)}`;
const version = (name: string) => asset(name)?.etag.replace(/"/g, "") ?? "0";

export function shell(o: ShellOptions): string {
  const attrs = Object.entries(o.bodyAttrs ?? {})
    .map(([k, v]) => ` ${esc(k)}="${esc(v)}"`)
    .join("");
  const css = ["dashboard.css", ...(o.styles ?? [])].map((s) => `<link rel="stylesheet" href="/assets/${esc(s)}?v=${version(s)}">`).join("\n");
  const js = ["dashboard.js", ...(o.scripts ?? [])].map((s) => `<script defer src="/assets/${esc(s)}?v=${version(s)}"></script>`).join("\n");
  const signedIn = o.user !== undefined;
  const nav = signedIn
    ? `<nav aria-label="Main"><a href="/">Runs</a> <form method="post" action="/logout" class="inline"><input type="hidden" name="_csrf" value="${esc(o.csrf ?? "")}"><button type="submit" class="link">Sign out${o.user ? ` (${esc(o.user)})` : ""}</button></form></nav>`
    : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><meta name="referrer" content="same-origin">
<title>${esc(o.title)} · Deckhand</title>
${css}
${js}
</head><body${attrs}>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><a class="brand" href="${signedIn ? "/" : "#main"}">Deckhand</a>${nav}</header>
<main id="main">
${o.body}
</main>
</body></html>`;
}
