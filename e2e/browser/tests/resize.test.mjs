// Auto-resize: the iframe on the host page follows the app's height.

import assert from "node:assert/strict";
import { countEvents, iframeHeight, scenario, signIn } from "../lib.mjs";

scenario("content growing inside the frame grows the iframe on the host page, and shrinking it shrinks the iframe", async (s) => {
  const frame = await signIn(s, "jane@acme.test");
  await s.waitForEvent("the first embed:resize", (e) => e.type === "embed:resize");
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
