// The session's life: a replayed token is refused and re-minted, signOut()
// ends the session for good, and an expired session is re-minted silently.

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { control, env, scenario, signIn, waitSignedIn } from "../lib.mjs";

scenario("a token replayed from a second mount yields embed:authRequired (replayed), then getToken's re-mint signs it in", async (s) => {
  await signIn(s, "jane@acme.test");
  const first = await control.tokens();

  // The second mount's getToken hands out the used token once, then mints.
  await s.page.evaluate(() => {
    let replay = true;
    window.second = window.mountEmbed("second", () => {
      if (replay) {
        replay = false;
        return window.__lastToken;
      }
      return window.mintToken();
    }, "/deals/second");
  });
  await waitSignedIn(s, { mount: "second", path: "/deals/second" });

  const second = (await s.events()).filter((e) => e.mount === "second");
  const replayed = second.findIndex((e) => e.type === "embed:authRequired" && e.reason === "replayed");
  assert.ok(replayed >= 0, "no embed:authRequired (replayed) on the second mount");
  assert.ok(second.slice(replayed).some((e) => e.type === "embed:authenticated"), "no embed:authenticated after the replay");
  const tokens = await control.tokens();
  assert.equal(tokens.length, first.length + 1);
  assert.deepEqual(tokens.slice(0, first.length), first);
  assert.equal(await s.page.evaluate(() => window.__mints), first.length + 1);
  await control.logLines("the replay's reason", (l) => l.includes('"reason":"replayed"'));
});

scenario("signOut() ends the session: the frame shows the signed-out page, the host sees exactly one embed:authRequired (signed_out), nothing re-mints", async (s) => {
  await signIn(s, "jane@acme.test");
  const before = (await s.events()).length;
  const mints = await s.page.evaluate(() => window.__mints);
  const served = (await control.upstreamFor("jane@acme.test")).length;

  await s.page.evaluate(() => window.embed.signOut());
  // signOut() resolved: the frame shows the gate page saying why.
  const shown = await s.until("the signed-out gate page", async () => {
    for (const f of s.frames(env.gateway + "/")) {
      const page = await f.evaluate(() => [
        document.querySelector("#gate:not([hidden])")?.dataset.why,
        document.querySelector('meta[name="embedgate-reason"]')?.content,
      ].join(" ")).catch(() => "");
      if (page === "signed_out signed_out") return { page, frame: f };
    }
    return null;
  }, { timeout: 3_000 });
  const required = (await s.events()).slice(before).filter((e) => e.type === "embed:authRequired");
  assert.deepEqual(required.map((e) => e.reason), ["signed_out"], `embed:authRequired after signOut(): ${JSON.stringify(required)}`);
  assert.deepEqual(await s.page.evaluate(() => [window.embed.state, window.embed.iframe.getAttribute("data-embedgate")]), ["signed-out", "signed-out"]);

  // Signed out means signed out: the next page in the frame is the gate
  // again, with no silent re-mint, no cookie, and no request to the app.
  await s.eval(shown.frame, () => location.assign("/deals/again"));
  await s.waitFor(env.gateway + "/deals/again", "the gate page at /deals/again",
    () => !!document.querySelector("#gate:not([hidden])"));
  await sleep(500);
  assert.equal(await s.page.evaluate(() => window.__mints), mints, "signOut must not re-mint");
  assert.deepEqual(await s.sessionCookies(), [], "the session cookie is still there");
  assert.equal(await s.eval(env.gateway + "/deals/again", () => fetch("/deals").then((r) => r.status)), 401);
  assert.equal((await control.upstreamFor("jane@acme.test")).length, served, "the app saw signed-in requests after sign-out");
  await control.logLines("the sign-out's audit line", (l) => l.includes('"msg":"signout"'));
});

scenario("an expired session (session_ttl 3s) yields embed:authRequired and a silent re-mint, without reloading the host page", async (s) => {
  await control.configure("session_ttl 3s");
  try {
    const frame = await signIn(s, "jane@acme.test");
    const pageID = await s.page.evaluate(() => window.__pageID);
    const minted = (await control.tokens()).length;
    // Expiry is the gateway's: wait until it no longer knows the session.
    await s.waitFor(frame, "the session to expire", () => fetch("/.embed/session", { cache: "no-store" }).then((r) => r.status !== 200), { timeout: 10_000 });

    // The next navigation inside the frame finds the session gone.
    await s.eval(frame, () => location.assign("/deals/after"));
    await s.until("a second embed:authenticated", async () =>
      (await s.events()).filter((e) => e.type === "embed:authenticated").length === 2, { timeout: 15_000 });
    await s.waitFor(env.gateway + "/deals/after", "the app again",
      () => location.pathname === "/deals/after" && document.getElementById("who")?.textContent === "jane@acme.test");

    const events = await s.events();
    assert.ok(events.some((e) => e.type === "embed:authRequired" && ["session_missing", "session_expired"].includes(e.reason)),
      "no embed:authRequired for the expired session");
    assert.equal((await control.tokens()).length, minted + 1);
    assert.equal(await s.page.evaluate(() => window.__pageID), pageID, "the host page reloaded");
    assert.ok((await control.upstreamFor("jane@acme.test")).some((r) => r.path === "/deals/after"), "the app never served /deals/after signed in");
  } finally {
    await control.configure("");
  }
});
