// No silent dead ends (issue 10): when the embed cannot go on without the
// host's help, the host gets embed:error once, with the reason, getToken is
// not called again, and the frame shows a final, human-readable state.

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { control, env, hostURL, regime, scenario } from "../lib.mjs";

/** The mount's embed:error events, and the frame's state as the host and the frame say it. */
async function errorState(s, frame) {
  const host = await s.page.evaluate(() => ({
    errors: window.__events.filter((e) => e.mount === "main" && e.type === "embed:error").map((e) => e.reason),
    state: window.embed.state,
    attr: window.embed.iframe.getAttribute("data-embedgate"),
    reason: window.embed.iframe.getAttribute("data-embedgate-reason"),
    calls: window.__calls,
  }));
  const shown = await s.eval(frame, () => ({
    state: document.documentElement.getAttribute("data-embedgate-state"),
    text: document.querySelector("[data-state]:not([hidden])")?.textContent || "",
    type: document.contentType,
  }));
  return { ...host, shown };
}

scenario("embed:error (malformed): a getToken that returns garbage is refused three times, then the host gets embed:error once and the frame stops", async (s) => {
  await s.open(hostURL("jane@acme.test", "&manual"));
  await s.page.evaluate(() => {
    window.__calls = 0;
    window.embed = window.mountEmbed("main", () => { window.__calls++; return "not-a-token"; });
  });
  await s.waitForEvent("embed:error", (e) => e.type === "embed:error");
  await sleep(1_000);
  const frame = s.frames(env.gateway + "/.embed/")[0];
  assert.ok(frame, "no gateway frame");
  const got = await errorState(s, frame);
  assert.deepEqual(got.errors, ["malformed"]);
  assert.equal(got.calls, 3, "getToken is called for three tokens, then no more");
  assert.deepEqual([got.state, got.attr, got.reason], ["error", "error", "malformed"]);
  assert.equal(got.shown.state, "stopped", `the frame shows ${got.shown.state}: ${got.shown.text}`);
  assert.doesNotMatch(got.shown.text, /trying again/i);
  assert.match(got.shown.text, /Reload the page/);
});

scenario("embed:error (wrong_tenant): mount with an unknown tenant gets an HTML 400 start page framed under the host's tenant, and the host gets embed:error", async (s) => {
  await s.open(hostURL("jane@acme.test", "&manual"));
  await s.page.evaluate(() => {
    window.__calls = 0;
    window.embed = window.mountEmbed("main", () => { window.__calls++; return window.mintToken(); }, "/deals", { tenant: "nosuch" });
  });
  await s.waitForEvent("embed:error", (e) => e.type === "embed:error");
  await sleep(500);
  const frame = await s.frame(env.gateway + "/.embed/start?tenant=nosuch");
  const got = await errorState(s, frame);
  assert.deepEqual(got.errors, ["wrong_tenant"]);
  assert.equal(got.calls, 0, "getToken was called for a tenant the gateway does not know");
  assert.deepEqual([got.state, got.attr, got.reason], ["error", "error", "wrong_tenant"]);
  assert.equal(got.shown.type, "text/html", "the start page is not HTML");
  assert.equal(got.shown.state, "config-error");
  assert.match(got.shown.text, /not set up for this page/);
  const start = s.seenResponses.find((r) => r.url.includes("/.embed/start?tenant=nosuch"));
  assert.equal(start?.status, 400);
});

/** The gateway's frame that shows the Storage Access button, once it does. */
const storageButtonFrame = (s) => s.until("the Storage Access button", async () => {
  for (const f of s.frames(env.gateway + "/")) {
    if (await f.evaluate(() => { const el = document.getElementById("storage"); return !!el && !el.hidden; }).catch(() => false)) return f;
  }
  return null;
}, { timeout: 15_000 });

// Storage access refused: only a regime where the cookie needs the Storage
// Access API (no CHIPS) shows the button; elsewhere the cookie sticks
// without it, so there is nothing to refuse.
if (regime.storageAccessClick) {
  scenario("embed:error (storage_access_denied): the user refuses storage access (Browser.setPermission denied) after the click", async (s) => {
    await s.open(hostURL("jane@acme.test", "&manual"));
    await s.page.evaluate(() => {
      window.__calls = 0;
      window.embed = window.mountEmbed("main", () => { window.__calls++; return window.mintToken(); });
    });
    const asking = await storageButtonFrame(s);
    const cdp = await s.browser.target().createCDPSession();
    await cdp.send("Browser.setPermission", {
      permission: { name: "storage-access" }, setting: "denied", origin: env.acme, embeddedOrigin: env.gateway,
    });
    const calls = await s.page.evaluate(() => window.__calls);
    await s.click(asking, "#storage-button");
    await s.waitForEvent("embed:error", (e) => e.type === "embed:error");
    await sleep(1_000);
    const got = await errorState(s, asking);
    assert.deepEqual(got.errors, ["storage_access_denied"]);
    assert.equal(got.calls, calls, "a refused grant burned another token");
    assert.deepEqual([got.state, got.attr, got.reason], ["error", "error", "storage_access_denied"]);
    assert.equal(got.shown.state, "storage-denied");
    assert.doesNotMatch(got.shown.text, /trying again/i);
    await cdp.detach();
  });
}

// A per-site cookie block (the user's "not allowed to use cookies" for the
// gateway's site, in the browser's settings; lib/launch.mjs) drops the
// cookie whatever the regime: partitioned or not, with storage access or
// without. The start page shows the Storage Access button; the user clicks
// and allows.
async function blockedUntilClick(s) {
  await s.open(hostURL("jane@acme.test", "&manual"));
  await s.page.evaluate(() => {
    window.__calls = 0;
    window.embed = window.mountEmbed("main", () => { window.__calls++; return window.mintToken(); });
  });
  const asking = await storageButtonFrame(s);
  assert.equal(await s.page.evaluate(() => window.__calls), 1, "tokens before the click");
  if (regime.engine === "chrome") await s.grantStorageAccess(env.acme, env.gateway);
  await s.click(asking, "#storage-button");
  await s.waitForEvent("embed:error", (e) => e.type === "embed:error");
  // Long enough for the frame to post embed:error again (after 1 s) and
  // for a further getToken, if anything still asked for one.
  await sleep(1_500);
  return { asking, got: await errorState(s, asking) };
}
const blocked = { launch: { blockCookies: [env.gateway] } };

if (regime.engine === "chrome") {
  scenario("embed:error (cookies_blocked): with the gateway's cookies blocked for its site, storage access granted and clicked still keeps no cookie: one embed:error, no further token, a final page", async (s) => {
    const { asking, got } = await blockedUntilClick(s);
    assert.deepEqual(got.errors, ["cookies_blocked"]);
    // One token before the click, one exchanged with access granted, then none.
    assert.equal(got.calls, 2, "getToken calls: a token was burned after the cookie did not stick");
    assert.equal((await control.tokens()).length, 2);
    assert.deepEqual([got.state, got.attr, got.reason], ["error", "error", "cookies_blocked"]);
    assert.equal(got.shown.state, "cookies-blocked", `the frame shows ${got.shown.state}: ${got.shown.text}`);
    assert.match(got.shown.text, /Your browser blocks this app's cookie here\. Allow cookies for this app in your browser settings, then reload the page\./);
    assert.doesNotMatch(got.shown.text, /trying again|Signing in/i);
    // Access was granted (requestStorageAccess() resolved: the start page
    // asked for the new token with reason storage_access; the permission
    // says granted), and still no cookie. hasStorageAccess() stays false:
    // Chromium counts blocked cookies as no access.
    const reasons = (await s.events()).filter((e) => e.type === "embed:authRequired").map((e) => e.reason);
    assert.deepEqual(reasons, ["storage_access"]);
    assert.equal(await s.eval(asking, () => navigator.permissions.query({ name: "storage-access" }).then((p) => p.state)), "granted");
    assert.deepEqual(await s.sessionCookies(), []);
  }, blocked);
} else {
  // Firefox refuses requestStorageAccess() to a site whose cookies the user
  // blocked (even with the storage-access permission granted), so there is
  // no granted access for the cookie not to stick under: the frame ends at
  // storage_access_denied, and cookies_blocked cannot arise.
  scenario("a per-site cookie block in Firefox: requestStorageAccess() is refused, so embed:error (storage_access_denied) once, no further token, a final page", async (s) => {
    const { asking, got } = await blockedUntilClick(s);
    assert.deepEqual(got.errors, ["storage_access_denied"]);
    assert.equal(got.calls, 1, "a refused grant burned another token");
    assert.equal((await control.tokens()).length, 1);
    assert.deepEqual([got.state, got.attr, got.reason], ["error", "error", "storage_access_denied"]);
    assert.equal(got.shown.state, "storage-denied", `the frame shows ${got.shown.state}: ${got.shown.text}`);
    assert.doesNotMatch(got.shown.text, /trying again|Signing in/i);
    assert.equal(await s.eval(asking, () => document.hasStorageAccess()), false);
    assert.deepEqual(await s.sessionCookies(), []);
  }, blocked);
}
