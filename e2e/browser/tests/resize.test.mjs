// Auto-resize: the iframe on the host page follows the app's height.

import assert from "node:assert/strict";
import { countEvents, iframeHeight, scenario, signIn } from "../lib.mjs";

scenario("content growing inside the frame grows the iframe on the host page, and shrinking it shrinks the iframe", async (s) => {
  const frame = await signIn(s, "jane@acme.test");
  // The start page posts its own embed:resize before the app loads: the
  // height to check is the first one the app posts, after its embed:ready.
  const appReady = (e) => e.mount === "main" && e.type === "embed:ready" && e.page === "app";
  await s.waitForEvent("the app's first embed:resize",
    (e, i, all) => e.mount === "main" && e.type === "embed:resize" && all.slice(0, i).some(appReady));
  const h0 = await iframeHeight(s);
  assert.ok(h0 >= 150 && h0 <= 600, `initial iframe height ${h0}: not fitted to the app`);
  const before = (await s.events()).length;

  await s.eval(frame, () => { document.getElementById("more").innerHTML = '<div class="tall"></div>'; });
  await s.waitFor(s.page, "the iframe to grow",
    (min) => document.querySelector("#main iframe").getBoundingClientRect().height >= min, { args: [h0 + 1400] });
  const inner = await s.eval(frame, () => document.documentElement.getBoundingClientRect().height);
  const h = await iframeHeight(s);
  assert.ok(Math.abs(h - inner) <= 1, `iframe height ${h}, content height ${inner}`);
  const n = countEvents((await s.events()).slice(before), "main", "embed:resize");
  assert.ok(n <= 3, `${n} resize messages for one change: not coalesced`);

  await s.eval(frame, () => { document.getElementById("more").innerHTML = ""; });
  await s.waitFor(s.page, "the iframe to shrink",
    (h0) => Math.abs(document.querySelector("#main iframe").getBoundingClientRect().height - h0) <= 1, { args: [h0] });
});
