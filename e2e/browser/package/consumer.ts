// Type-checked by e2e/npm_package_test.go (tsc --noEmit --strict) in the
// scratch project that installed the packed @embedgate/sdk: the types come
// with the package through its exports.
import { events, mount } from "@embedgate/sdk";
import type { Embed, EmbedErrorEvent, EmbedState, MountOptions } from "@embedgate/sdk";
import { TAG } from "@embedgate/sdk/element";

const options: MountOptions = {
  target: "#app",
  src: "https://portal.example.com/deals",
  tenant: "acme",
  className: "embed",
  getToken: async () => (await (await fetch("/embed-token", { method: "POST" })).json()).token as string,
};
const embed: Embed = mount(options);
const state: EmbedState = embed.state;
const stop: () => void = embed.on("embed:error", (e: EmbedErrorEvent) => console.log(e.reason.toUpperCase()));
embed.on("embed:authenticated", (e) => console.log(e.sub, e.expires_at));
embed.on("embed:ready", (e) => console.log(e.page === "app" ? e.sub : ""));
const done: Promise<void> = embed.signOut();
const tag: "embed-gate" = TAG;
const all: readonly string[] = events;
console.log(state, stop, done, tag, all);

// @ts-expect-error: tenant is required
mount({ target: "#app", src: "https://portal.example.com/", getToken: () => "t" });
// @ts-expect-error: no such event
embed.on("embed:nope", () => {});
