// The browser suite's library, one import for every test file:
//
//   import { scenario, signIn, control, env, regime } from "../lib.mjs";
//   scenario("the app loads signed in", async (s) => {
//     const frame = await signIn(s, "jane@acme.test");
//     assert.equal(await s.eval(frame, () => document.title), "Deals");
//   });
//
// A scenario runs in the regime that e2e/browser_test.go chose
// (EMBEDGATE_REGIME); `regime` says what that regime promises (partitioned
// cookie, Storage Access click, …), so one test asserts the right thing in
// each. Sites: env.gateway, env.acme (customer page, e2e/browser/sites/acme),
// env.evil (stranger, sites/evil). Files: lib/env.mjs (variables, the Go
// side's record, requests from node), lib/regimes.mjs, lib/launch.mjs
// (browser start), lib/session.mjs (one scenario's browser), lib/flows.mjs (sign-in).

import { currentRegime } from "./lib/regimes.mjs";

export { control, env, siteRequest } from "./lib/env.mjs";
export { countEvents, hostURL, iframeHeight, scenario, signIn, waitSignedIn } from "./lib/flows.mjs";
export { regimes } from "./lib/regimes.mjs";
export { Session, siteOf } from "./lib/session.mjs";

/** The regime of this run. */
export const regime = currentRegime();
