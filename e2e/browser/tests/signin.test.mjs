// Signing in: the allowlisted customer page mounts the SDK, its backend
// mints a token, and the app loads signed in inside the cross-site frame,
// with the cookie each regime promises and no token in any URL, even when
// the start page's embed:authenticated is lost on the way.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { control, countEvents, env, hostURL, regime, scenario, signIn, siteOf, waitSignedIn } from "../lib.mjs";

scenario("signed-in embed: the app sees the identity; the cookie is Secure, HttpOnly, SameSite=None and partitioned as the regime promises", async (s) => {
  const frame = await signIn(s, "jane@acme.test");

  // The upstream saw the verified identity.
  const seen = await control.upstreamFor("jane@acme.test");
  assert.ok(seen.length > 0, "no upstream request carried the subject");
  assert.equal(seen[0].path, "/deals");
  assert.equal(seen[0].tenant, "acme");

  // The iframe the SDK made.
  const attrs = await s.page.evaluate(() => {
    const f = document.querySelector("#main iframe");
    return [f.getAttribute("allow"), f.title, new URL(f.src).pathname];
  });
  assert.deepEqual(attrs, ["storage-access", "Deals", "/.embed/start"]);

  // The cookie, as the browser holds it.
  const cookies = await s.sessionCookies();
  assert.equal(cookies.length, 1, `session cookies: ${JSON.stringify(cookies.map((c) => c.partition))}`);
  const c = cookies[0];
  assert.deepEqual([c.domain, c.path, c.secure, c.httpOnly, c.sameSite], [new URL(env.gateway).hostname, "/", true, true, "None"]);
  if (regime.partitioned) {
    assert.equal(c.partition, siteOf(env.acme), "the cookie is not partitioned under the host page's site");
    assert.equal(c.partitionOpaque, false);
  } else {
    assert.equal(c.partition, undefined, "without CHIPS the cookie is unpartitioned (kept through Storage Access)");
  }
  // Partitioned means what it says: the gateway opened as a top-level page
  // of its own has no session; unpartitioned (Storage Access), it has.
  const top = await s.newPage();
  await top.goto(env.gateway + "/.embed/session", { waitUntil: "load", timeout: 20_000 });
  const topLevel = await top.evaluate(() => document.body.innerText);
  await top.close();
  if (regime.partitioned) assert.match(topLevel, /session_missing/, "the session cookie is visible outside the host page's partition");
  else assert.match(topLevel, /jane@acme\.test/);

  // HttpOnly: the app's own script cannot read it.
  assert.doesNotMatch(await s.eval(frame, () => document.cookie), /embed_session/);
  // The parent origin the start page saw is bound into the session.
  const info = await s.eval(frame, () => fetch("/.embed/session").then((r) => r.json()));
  assert.equal(info.sub, "jane@acme.test");
  assert.equal(info.origin, env.acme);
  // inject_bridge kept the app's strict CSP working: its own nonce script
  // ran, and so did bridge.js with the same nonce.
  assert.ok(await s.eval(frame, () => window.appScriptRan === true && !!window.EmbedBridge), "the app's script or the injected bridge did not run");

  assert.equal(countEvents(await s.events(), "main", "embed:authenticated"), 1);
  assert.equal((await control.tokens()).length, regime.firstSignInTokens);
});

scenario("the regime is what it claims: a plain cookie set in the signed-in frame is blocked, kept or partitioned", async (s) => {
  const frame = await signIn(s, "jane@acme.test");
  await s.eval(frame, () => { document.cookie = "plain=1; Secure; SameSite=None; Path=/"; });
  const plain = (await s.cookies()).filter((c) => c.name === "plain");
  const got = plain.length === 0 ? "blocked" : plain[0].partition === undefined ? "kept" : "partitioned";
  assert.equal(got, regime.plainCookie, `plain cookie: ${JSON.stringify(plain.map((c) => c.partition))}`);
  if (got === "partitioned") assert.equal(plain[0].partition, siteOf(env.acme));
});

scenario("inject_bridge never turns a user's text into markup: a data block after </body>, SVG, ISO-2022-JP", async (s) => {
  const frame = await signIn(s, "jane@acme.test");
  // [path, whether the bridge goes in]: before the real </body> of the
  // first; the others are left as they came.
  for (const [path, bridge] of [["/ugc/data-block", true], ["/ugc/svg", false], ["/ugc/iso-2022-jp", false]]) {
    await s.eval(path === "/ugc/data-block" ? frame : env.gateway + "/ugc/", (p) => location.assign(p), path);
    const got = await s.waitFor(env.gateway + path, `the page ${path}`, () =>
      document.readyState === "complete" && document.getElementById("end") && { xss: !!window.__xss, bridge: !!window.EmbedBridge });
    assert.deepEqual(got, { xss: false, bridge }, `${path}: ${JSON.stringify(got)}`);
  }
});

scenario("an app page with an injected <base href> to a stranger: the injected bridge still loads from the gateway, and its sign-out stays there", async (s) => {
  const frame = await signIn(s, "jane@acme.test");
  await s.eval(frame, () => location.assign("/ugc/base"));
  const page = env.gateway + "/ugc/base";
  // A deferred script has run (or failed) by the time the page is complete.
  const got = await s.waitFor(page, "the page with the <base>", () =>
    document.readyState === "complete" && !!document.getElementById("end") && {
      bridge: !!window.EmbedBridge,
      base: document.baseURI,
      stranger: !!window.__strangerScript,
      scripts: performance.getEntriesByType("resource").filter((e) => e.name.endsWith("/bridge.js")).map((e) => new URL(e.name).origin),
    });
  assert.equal(new URL(got.base).origin, env.evil, "the page's <base> did not take: the attack was not tried");
  assert.equal(got.stranger, false, "the stranger's script ran under the app's nonce");
  assert.deepEqual(got.scripts, [env.gateway], "bridge.js came from elsewhere than the gateway");
  assert.equal(got.bridge, true, "the gateway's bridge did not run");
  // EmbedBridge.signOut() posts to, and then shows, the gateway's own
  // sign-out, not the stranger's copy of its path.
  await s.eval(page, () => { window.EmbedBridge.signOut(); });
  await s.until("the gateway's signed-out page", async () => {
    for (const f of s.frames(env.gateway + "/.embed/signout")) {
      if (await f.evaluate(() => document.querySelector("#gate:not([hidden])")?.dataset.why).catch(() => "") === "signed_out") return true;
    }
    return false;
  });
  assert.deepEqual(await s.sessionCookies(), [], "the session cookie is still there");
  assert.ok(!s.seenURLs.some((u) => u.startsWith(env.evil)), `a request went to the stranger: ${s.seenURLs.filter((u) => u.startsWith(env.evil))}`);
});

scenario("the token is never in any URL the browser loaded, in its history or in its network log", async (s) => {
  const frame = await signIn(s, "jane@acme.test");
  // More traffic inside the frame: a history entry and a full load.
  await s.eval(frame, () => history.pushState({}, "", "/deals/7"));
  await s.eval(frame, () => location.assign("/deals/8"));
  await s.waitFor(env.gateway + "/deals/8", "the second page", () => location.pathname === "/deals/8" && !!document.getElementById("who"));
  const app = await s.frame(env.gateway + "/deals/8");

  const urls = [
    ...(await s.historyURLs()),
    ...(await s.eval(app, () => [location.href, document.referrer, String(history.length)].concat(performance.getEntries().map((e) => e.name)))),
    ...(await s.page.evaluate(() => [location.href].concat(performance.getEntries().map((e) => e.name)))),
    ...s.seenURLs,
  ];
  const netlog = await s.netLogURLs();
  urls.push(...netlog);

  const tokens = await control.tokens();
  assert.equal(tokens.length, regime.firstSignInTokens);
  for (const token of tokens) {
    const [, payload, signature] = token.split(".");
    for (const u of urls) {
      assert.ok(!u.includes("embed_token") && !u.includes(payload) && !u.includes(signature), `a URL the browser used holds the token: ${u}`);
    }
  }
  // The evidence covers the flow: the network log saw the start page, the
  // exchange and the app.
  for (const want of ["/.embed/start?tenant=acme", "/.embed/exchange", "/deals/8", "/api/embed-token"]) {
    assert.ok(netlog.some((u) => u.includes(want)), `the network log has no ${want}; it holds ${netlog.length} URLs`);
  }
});

scenario("a reload of the host page signs in again with no click", async (s) => {
  await signIn(s, "jane@acme.test");
  const pageID = await s.page.evaluate(() => window.__pageID);
  const before = (await control.tokens()).length;
  await s.reload();
  assert.notEqual(await s.page.evaluate(() => window.__pageID), pageID, "the host page did not reload");
  // Where the first sign-in needed the Storage Access click, this one must
  // not (waitSignedIn fails when the button shows again).
  await waitSignedIn(s, { sub: "jane@acme.test" });
  assert.equal((await control.tokens()).length, before + 1);
  assert.equal(countEvents(await s.events(), "main", "embed:authenticated"), 1);
});

scenario("screenshots of the host page with the embedded app and of the stranger's empty frame", async (s) => {
  const frame = await signIn(s, "jane@acme.test");
  await s.waitFor(s.page, "the fitted iframe", () => document.querySelector("#main iframe").getBoundingClientRect().height > 150);
  await s.eval(frame, () => document.fonts.ready.then(() => true));
  const shots = [await s.screenshot("embed-host-page.png")];

  await s.open(env.evil + "/");
  const blocked = await s.frameOf("#app iframe");
  await s.until("the blocked frame", () => blocked.url().startsWith(regime.blockedFrameURL), { timeout: 10_000 });
  shots.push(await s.screenshot("embed-stranger-blocked.png"));
  for (const p of shots) {
    const data = readFileSync(p);
    assert.ok(data.subarray(0, 8).equals(Buffer.from("\x89PNG\r\n\x1a\n", "latin1")) && data.length > 5000, `${p}: not a plausible PNG (${data.length} bytes)`);
  }
});

scenario("one lost embed:authenticated: the host page swallows the start page's message, and the app's embed:ready still signs the host in, once", async (s) => {
  await s.open(hostURL("jane@acme.test", "&manual"));
  // Before the SDK listens: a capturing listener that stops the first
  // embed:authenticated from the gateway before any other listener sees it,
  // as a postMessage lost on the way would.
  await s.page.evaluate((gateway) => {
    window.__lost = [];
    window.addEventListener("message", (e) => {
      if (e.origin === gateway && e.data?.type === "embed:authenticated" && window.__lost.length === 0) {
        window.__lost.push(e.data);
        e.stopImmediatePropagation();
      }
    }, true);
    window.embed = window.mountEmbed("main");
  }, env.gateway);
  await waitSignedIn(s, { sub: "jane@acme.test" });

  const lost = await s.page.evaluate(() => window.__lost);
  assert.equal(lost.length, 1, "the start page's embed:authenticated never came");
  assert.equal(lost[0].sub, "jane@acme.test");
  // Settled by the app's embed:ready, which the same message delivers just after.
  const events = await s.events();
  const auth = events.findIndex((e) => e.type === "embed:authenticated");
  assert.equal(countEvents(events, "main", "embed:authenticated"), 1);
  assert.deepEqual([events[auth].sub, events[auth].expires_at], [lost[0].sub, lost[0].expires_at]);
  assert.deepEqual([events[auth + 1]?.type, events[auth + 1]?.page], ["embed:ready", "app"]);
  assert.equal(events.slice(0, auth).filter((e) => e.type === "embed:ready" && e.page === "app").length, 0);
  // And the embed works: signed in, no token more than the regime's sign-in takes.
  assert.equal(await s.page.evaluate(() => window.embed.state), "signed-in");
  assert.equal((await control.tokens()).length, regime.firstSignInTokens);
  await s.eval(env.gateway + "/deals", () => location.assign("/deals/9"));
  await waitSignedIn(s, { sub: "jane@acme.test", path: "/deals/9" });
  assert.equal(countEvents(await s.events(), "main", "embed:authenticated"), 1);
});
