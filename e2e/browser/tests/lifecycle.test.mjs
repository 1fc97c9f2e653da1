// destroy() and the gate page (issue 10): destroy removes the frame and
// every listener; the gate page says why in one sentence per group of
// reasons (data-why) and posts embed:resize to the allowlisted host page.

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { control, env, hostURL, scenario, signIn, siteRequest, waitSignedIn } from "../lib.mjs";

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

// The gate page's sentences (internal/bridge/why.go); not_signed_in is above,
// signed_out in the sign-out tests.
const SENTENCES = {
  link_used: "This sign-in link was already used: each link works once. Open the app again from the page that shows it.",
  not_verified: "Your sign-in could not be verified. Sign in again from the page that shows this app.",
  session_expired: "Your session has expired. Sign in again from the page that shows this app.",
};

/** What the gate page in the frame at prefix says, once it shows. */
const gateSays = (s, prefix, what) => s.waitFor(prefix, what, () => {
  const el = document.querySelector("#gate:not([hidden])");
  return el && { why: el.dataset.why, text: el.textContent, reason: document.querySelector('meta[name="embedgate-reason"]')?.content };
});

/** A frame of the app at path in the host page, without the SDK. */
const bareFrame = (s, path) => s.page.evaluate((src) => {
  const f = document.createElement("iframe");
  f.src = src;
  document.getElementById("app").appendChild(f);
}, env.gateway + path);

scenario("the gate page says why for a used link (link_used), a malformed token (not_verified) and an idle session (session_expired)", async (s) => {
  await control.configure("idle_timeout 2s");
  try {
    await s.open(hostURL("jane@acme.test", "&manual"));
    // A token link used once already (from node, outside the browser),
    // then opened in a frame; and a token that is no token at all.
    const token = await s.page.evaluate(() => window.mintToken());
    const first = await siteRequest(`${env.gateway}/links/first?embed_token=${token}`,
      { headers: { "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "cross-site" } });
    assert.equal(first.status, 303, "the link's first use did not sign in");
    // One frame at a time: with both loading at once, Chromium sometimes
    // left the second frame's evaluations unanswered (three CI runs).
    await bareFrame(s, `/links/used?embed_token=${token}`);
    const used = await gateSays(s, env.gateway + "/links/used", "the gate page for the used link");
    assert.deepEqual([used.why, used.reason, used.text], ["link_used", "replayed", SENTENCES.link_used]);
    await bareFrame(s, "/links/garbage?embed_token=not-a-token");
    const garbage = await gateSays(s, env.gateway + "/links/garbage", "the gate page for the malformed token");
    assert.deepEqual([garbage.why, garbage.reason, garbage.text], ["not_verified", "malformed", SENTENCES.not_verified]);

    // A session left idle: after sign-in, getToken never answers again, so
    // that the frame stays on the gate page instead of signing in anew.
    await s.page.evaluate(() => {
      window.embed = window.mountEmbed("main", () => (window.__hang ? new Promise(() => {}) : window.mintToken()));
    });
    const frame = await waitSignedIn(s, { sub: "jane@acme.test" });
    await s.page.evaluate(() => { window.__hang = true; });
    // The gateway's clock: any request with the cookie would renew the
    // session, so this waits rather than polls.
    await sleep(2_600);
    await s.eval(frame, () => location.assign("/deals/idle"));
    const idle = await gateSays(s, env.gateway + "/deals/idle", "the gate page for the idle session");
    assert.deepEqual([idle.why, idle.reason, idle.text], ["session_expired", "session_idle", SENTENCES.session_expired]);
    await s.waitForEvent("embed:authRequired (session_idle)", (e) => e.type === "embed:authRequired" && e.reason === "session_idle");
    assert.doesNotMatch(used.text + garbage.text + idle.text, /session has ended/);
  } finally {
    await control.configure("");
  }
});
