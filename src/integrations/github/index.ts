/** GitHub delivery (see mount.ts) as an integration: no routes, credentials and the pull-request publisher. */
import type { Integration } from "../integration.ts";
import { mountGitHub } from "./mount.ts";

export const github: Integration = async (_f, o) => o.said(await mountGitHub(o.deckhand));

export { mountGitHub };
