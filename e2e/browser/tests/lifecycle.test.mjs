// destroy() and the gate page (issue 10): destroy removes the frame and
// every listener; the gate page says why in one sentence (data-why) and
// posts embed:resize to the allowlisted host page.

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { env, hostURL, scenario, signIn } from "../lib.mjs";

scenario("destroy() removes the iframe and every listener: no event, no token after it", async (s) => {
  await signIn(s, "jane@acme.test");
  await s.page.evaluate(() => window.embed.destroy());
  // Counted once destroy() has returned: an event the frame sent before
  // (a late embed:resize) is not the SDK's to take back.
  const before = await s.page.evaluate(() => ({ events: window.__events.length, mints: window.__mints }));
  assert.equal(await s.page.evaluate(() => document.querySelectorAll("#main iframe").length), 0, "the iframe is still there");
  assert.equal(s.frames(env.gateway + "/").length, 0, "a gateway frame is still live");
  // A message as the frame would send it reaches no listener now.
  await s.page.evaluate((origin) => window.postMessage({ type: "embed:authRequired", reason: "session_missing" }, origin), env.acme);
  await sleep(1_000);
  const after = await s.page.evaluate(() => ({ events: window.__events.length, mints: window.__mints }));
  assert.deepEqual(after, before);
});

scenario("the gate page says why (data-why not_signed_in, its sentence) and posts embed:resize to the host page", async (s) => {
  await s.open(hostURL("jane@acme.test", "&manual"));
  // A frame of the app with no session and no SDK: the host records what
  // the gateway's page posts.
  await s.page.evaluate((src) => {
    window.__posted = [];
    window.addEventListener("message", (e) => window.__posted.push({ origin: e.origin, data: e.data }));
    const f = document.createElement("iframe");
    f.src = src;
    document.getElementById("app").appendChild(f);
  }, env.gateway + "/deals");
  const gate = await s.waitFor(env.gateway + "/deals", "the gate page", () => {
    const el = document.querySelector("#gate:not([hidden])");
    return el && { why: el.dataset.why, text: el.textContent, reason: document.querySelector('meta[name="embedgate-reason"]')?.content };
  });
  assert.equal(gate.why, "not_signed_in");
  assert.match(gate.text, /not signed in yet/);
  assert.doesNotMatch(gate.text, /session has ended/);
  const resize = await s.until("embed:resize from the gate page", async () =>
    (await s.page.evaluate(() => window.__posted)).find((m) => m.data?.type === "embed:resize"));
  assert.equal(resize.origin, env.gateway);
  assert.ok(typeof resize.data.height === "number" && resize.data.height > 0, `height ${resize.data.height}`);
});
