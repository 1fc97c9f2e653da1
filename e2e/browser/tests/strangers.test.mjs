// Strangers: a site not in frame_ancestors gets no frame and no session,
// messages forged by a stranger frame are ignored both ways, and a
// cross-site form POST into the app is refused.

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { control, env, iframeHeight, regime, scenario, signIn, siteRequest } from "../lib.mjs";

// How long "nothing happens" is watched for after a stranger acted.
const SETTLE_MS = 700;

scenario("a host page not in frame_ancestors gets no rendered frame (CSP) and no session", async (s) => {
  await s.open(env.evil + "/");
  // The browser did fetch the start page...
  const frame = await s.frameOf("#app iframe", { timeout: 5_000 });
  await s.until("the start page's response", () => s.seenResponses.some((r) => r.url.includes("/.embed/start")));
  // ...and showed an error page in its place: nothing of the gateway ran.
  await s.until(`the blocked-frame error page (${regime.blockedFrameURL}…)`, () => frame.url().startsWith(regime.blockedFrameURL));
  assert.equal(await frame.evaluate(() => !!document.getElementById("embedgate-config")), false, "the start page rendered inside a stranger's page");
  await sleep(SETTLE_MS);
  assert.deepEqual(await s.events(), [], "the stranger's SDK got events");
  assert.equal(await s.page.evaluate(() => window.__asked), 0, "the SDK asked the stranger for a token");
  assert.deepEqual(await s.sessionCookies(), []);
  assert.ok(!s.seenURLs.some((u) => u.includes("/.embed/exchange")), "an exchange was attempted");
  assert.deepEqual(await control.upstream(), [], "requests reached the app");
  // The reason: the start page names only acme's page as a framer.
  const res = await siteRequest(env.gateway + "/.embed/start?tenant=acme&next=/deals");
  assert.ok(String(res.headers["content-security-policy"]).endsWith("; frame-ancestors " + env.acme),
    `start page CSP = ${res.headers["content-security-policy"]}`);
});

scenario("embed:navigate reaches the host; messages a stranger frame forges are ignored by the SDK and inside the frame", async (s) => {
  const frame = await signIn(s, "jane@acme.test");
  await s.waitFor(frame, "host:init", () => window.EmbedBridge.init && window.EmbedBridge.init.locale === "de-CH", { timeout: 5_000 });

  await s.eval(frame, () => { window.__marker = 1; history.pushState({}, "", "/deals/42?tab=notes"); });
  await s.waitForEvent("embed:navigate to /deals/42?tab=notes", (e) => e.type === "embed:navigate" && e.path === "/deals/42?tab=notes", { timeout: 5_000 });

  // A stranger frame in the same page forges messages both ways.
  const mints = await s.page.evaluate(() => window.__mints);
  const h = await iframeHeight(s);
  await s.page.evaluate(() => window.addStranger());
  await s.waitFor(env.evil + "/spam.html", "the forged messages", () => document.title === "sent");
  await sleep(SETTLE_MS);

  for (const e of await s.events()) {
    assert.ok(e.path !== "/pwned" && e.reason !== "forged" && e.height !== 4321, `the SDK passed on a forged message: ${JSON.stringify(e)}`);
  }
  assert.equal(await iframeHeight(s), h, "the iframe's height changed");
  assert.equal(await s.page.evaluate(() => window.__mints), mints, "a forged message made the SDK ask for a token");
  assert.equal(await s.eval(frame, () => window.EmbedBridge.init.locale), "de-CH", "a forged host:init reached the app");
  assert.equal(await s.eval(frame, () => window.__marker || 0), 1, "a forged host:signOut reloaded the app");
  assert.equal(await s.eval(frame, () => fetch("/.embed/session").then((r) => r.status)), 200, "a forged host:signOut ended the session");
});

scenario("a stranger frame on the host page cannot read who is signed in: bridge.js run as its script is refused (403, CORP)", async (s) => {
  await signIn(s, "jane@acme.test");
  await s.page.evaluate(() => window.addStranger("peek.html"));
  const peek = env.evil + "/peek.html";
  await s.waitFor(peek, "the stranger's script load to end", () => document.title === "done");
  const got = await s.eval(peek, () => window.__peek);
  assert.ok(got.shadowed, "the stranger could not shadow window.parent: the attack was not tried");
  assert.deepEqual(got.stolen, [], "bridge.js ran in the stranger's frame and posted the session's data");
  assert.equal(got.script, "refused", "bridge.js ran in the stranger's frame");
  // The gateway refused it itself (the browser said Sec-Fetch-Site
  // cross-site), not only the browser (CORP): its access log.
  const answers = (await control.logLines("the access entry for the stranger's bridge.js", (l) => {
    if (!l.includes('"http.log.access"')) return false;
    const e = JSON.parse(l);
    return e.request.uri === "/.embed/bridge.js" && e.request.headers["Sec-Fetch-Site"]?.[0] === "cross-site";
  })).map((l) => JSON.parse(l));
  assert.ok(answers.every((e) => e.status === 403),
    `the gateway's answers to the stranger's bridge.js: ${JSON.stringify(answers.map((e) => e.status))}`);
});

scenario("a cross-site form POST from the stranger into the app is refused (403) and never reaches the app", async (s) => {
  await signIn(s, "jane@acme.test");
  await s.open(env.evil + "/post.html");
  await s.waitFor(s.page, "the form POST's answer",
    (want) => location.href === want && !!document.body && document.body.innerText.includes("cross_origin"),
    { args: [env.gateway + "/deals/delete-all"], timeout: 15_000 });
  const answers = s.seenResponses.filter((r) => r.url.endsWith("/deals/delete-all"));
  assert.ok(answers.length > 0, "no response to the form POST in the network events");
  for (const r of answers) assert.equal(r.status, 403, "the form POST's status");
  for (const r of await control.upstream()) assert.equal(r.method, "GET", `the app saw ${r.method} ${r.path}`);
});
