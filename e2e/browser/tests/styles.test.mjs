// Host styles win (issue 10): the SDK's iframe defaults live in
// @layer embedgate :where(iframe[data-embedgate]), never inline, so the host
// page's own CSS beats them; mount's className lands on the iframe.

import assert from "node:assert/strict";
import { hostURL, scenario, waitSignedIn } from "../lib.mjs";

scenario("host styles win: the host page's iframe border shows (computed style), className is set, no inline style", async (s) => {
  await s.open(hostURL("jane@acme.test", "&manual"));
  await s.page.evaluate(() => {
    const style = document.createElement("style");
    style.textContent = "iframe { border: 3px solid rgb(255, 0, 0); } .host-frame { height: 321px; }";
    document.head.appendChild(style);
    window.embed = window.mountEmbed("main", undefined, "/deals", { className: "host-frame", autoResize: false });
  });
  await waitSignedIn(s);
  const got = await s.page.evaluate(() => {
    const f = document.querySelector("#main iframe");
    const cs = getComputedStyle(f);
    return {
      className: f.className, style: f.getAttribute("style"),
      border: [cs.borderTopWidth, cs.borderTopStyle, cs.borderTopColor],
      height: cs.height, display: cs.display, width: f.offsetWidth, parent: f.parentElement.clientWidth,
    };
  });
  assert.equal(got.className, "host-frame");
  assert.ok(!got.style || !/border|display|width/.test(got.style), `inline style on the iframe: ${got.style}`);
  assert.deepEqual(got.border, ["3px", "solid", "rgb(255, 0, 0)"]);
  assert.equal(got.height, "321px", "the host's class did not size the iframe");
  // The defaults still apply where the host says nothing.
  assert.equal(got.display, "block");
  // (width 100%: the content box fills the container, the host's 3px borders come on top or inside)
  assert.ok(Math.abs(got.width - got.parent) <= 6, `the iframe (${got.width}px) does not fill its container (${got.parent}px) by default`);
});
