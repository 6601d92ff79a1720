/** GitHub delivery (see mount.ts), registered for `deckhand serve`. */
import { registerIntegration } from "../index.ts";
import { mountGitHub } from "./mount.ts";

registerIntegration((deckhand) => mountGitHub(deckhand));

export { mountGitHub };
