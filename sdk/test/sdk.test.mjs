// sdk.js as the gateway serves it (a classic script, the EmbedGate global),
// driven through a fake page: the sign-in handshake, retries and
// embed:error, the sign-out race, lost and repeated messages, styles.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import vm from "node:vm";

import { GATEWAY, fakePage, tick } from "./fakedom.mjs";

const source = readFileSync(new URL("../sdk.js", import.meta.url), "utf8");

// load runs sdk.js in a fresh realm whose global is a fake window, as a
// <script> tag would, and mounts it.
function load(options = {}, pageOptions = {}) {
  const page = fakePage({ fakeTimers: true, ...pageOptions });
  const errors = [];
  const sandbox = {
    window: page.window,
    document: page.document,
    URL,
    console: { error: (...a) => errors.push(a.join(" ")) },
    setTimeout: page.setTimeout,
    clearTimeout: page.clearTimeout,
  };
  vm.createContext(sandbox);
  vm.runInContext(source, sandbox, { filename: "sdk.js" });
  const tokens = [];
  let n = 0;
  const getToken =
    options.getToken ||
    (() => {
      const t = "token-" + ++n;
      tokens.push(t);
      return Promise.resolve(t);
    });
  const embed = sandbox.EmbedGate.mount({
    target: "#app",
    src: GATEWAY + "/deals?tab=2",
    tenant: "acme",
    ...options,
    getToken,
  });
  const events = [];
  for (const type of sandbox.EmbedGate.events) embed.on(type, (e) => events.push({ ...e }));
  const of = (type) => events.filter((e) => e.type === type);
  return { page, sandbox, embed, events, of, tokens, errors };
}

const signIn = async (s, id = "s1") => {
  s.page.deliver({ type: "embed:ready", page: "start", id: id + ":1" });
  await tick();
  s.page.deliver({ type: "embed:authenticated", sub: "jane@acme.test", expires_at: "2030-01-01T00:00:00Z" });
  s.page.deliver({ type: "embed:ready", page: "app", path: "/deals?tab=2", sub: "jane@acme.test", expires_at: "2030-01-01T00:00:00Z" });
};

test("the script tag defines EmbedGate with mount and the event list", () => {
  const { sandbox } = load();
  assert.equal(typeof sandbox.EmbedGate.mount, "function");
  assert.deepEqual(Array.from(sandbox.EmbedGate.events), [
    "embed:ready", "embed:authenticated", "embed:authRequired", "embed:resize", "embed:navigate", "embed:error",
  ]);
  assert.ok(Object.isFrozen(sandbox.EmbedGate));
});

test("the iframe: start URL, no inline display/width/border, className, state attribute, styles once", () => {
  const { page, embed } = load({ className: "my-frame", title: "Deals" });
  const f = embed.iframe;
  assert.equal(f.src, GATEWAY + "/.embed/start?tenant=acme&next=%2Fdeals%3Ftab%3D2");
  assert.equal(f.getAttribute("allow"), "storage-access");
  assert.equal(f.title, "Deals");
  assert.equal(f.className, "my-frame");
  assert.deepEqual(f.style, {}, "no inline style before the first resize");
  assert.equal(f.getAttribute("data-embedgate"), "loading");
  assert.equal(embed.state, "loading");
  assert.equal(page.app.children[0], f);
  assert.equal(page.document.styles.length, 1);
  const css = page.document.styles[0].textContent;
  assert.match(css, /^@layer embedgate\{:where\(iframe\[data-embedgate\]\)\{display:block;width:100%;border:0\}/);
  // A second mount in the same document adds no second stylesheet.
  page.window.EmbedGate = undefined;
  const again = load();
  assert.equal(again.page.document.styles.length, 1);
});

test("mount's prefix option moves every gateway URL", () => {
  const { embed, page } = load({ prefix: "/_gate" });
  assert.equal(embed.iframe.src, GATEWAY + "/_gate/start?tenant=acme&next=%2Fdeals%3Ftab%3D2");
  embed.signOut();
  assert.deepEqual(page.frame.navigations, [GATEWAY + "/_gate/signout?tenant=acme"]);
  for (const bad of ["no-slash", "/", "/.embed/", "//evil.test", "/\\evil.test", "/\t/evil.test", "/./x", "/a/..", "/a b"]) {
    assert.throws(() => load({ prefix: bad }), /prefix/, `prefix ${JSON.stringify(bad)} accepted`);
  }
  for (const good of ["/.embed", "/a/b-c/~d.e"]) assert.doesNotThrow(() => load({ prefix: good }), `prefix ${good} refused`);
});

test("sign-in: embed:ready from the start page brings one token to the gateway's origin", async () => {
  const s = load();
  await signIn(s);
  assert.deepEqual(s.tokens, ["token-1"]);
  const tok = s.page.frame.posted.find((p) => p.msg.type === "host:token");
  assert.equal(tok.target, GATEWAY);
  assert.equal(tok.msg.token, "token-1");
  assert.equal(s.of("embed:authenticated").length, 1);
  assert.equal(s.embed.state, "signed-in");
});

test("a lost embed:authenticated: the app's embed:ready settles the sign-in, once", async () => {
  const s = load();
  s.page.deliver({ type: "embed:ready", page: "start", id: "d:1" });
  await tick();
  s.page.deliver({ type: "embed:ready", page: "app", path: "/deals", sub: "jane@acme.test", expires_at: "2030-01-01T00:00:00Z" });
  assert.deepEqual(
    s.of("embed:authenticated").map((e) => [e.sub, e.expires_at]),
    [["jane@acme.test", "2030-01-01T00:00:00Z"]],
  );
  assert.equal(s.embed.state, "signed-in");
  // The original arriving late is not a second sign-in.
  s.page.deliver({ type: "embed:authenticated", sub: "jane@acme.test", expires_at: "2030-01-01T00:00:00Z" });
  assert.equal(s.of("embed:authenticated").length, 1);
  // An app page loaded later, without a token in flight, settles nothing.
  s.page.deliver({ type: "embed:ready", page: "app", path: "/x", sub: "jane@acme.test", expires_at: "2030-01-01T00:00:00Z" });
  assert.equal(s.of("embed:authenticated").length, 1);
});

test("a message the frame repeats (same id) is handled once", async () => {
  const s = load();
  for (let i = 0; i < 3; i++) s.page.deliver({ type: "embed:ready", page: "start", id: "d:1" });
  await tick();
  assert.equal(s.tokens.length, 1);
  assert.equal(s.of("embed:ready").length, 1);
});

test("three refused tokens: embed:error with the last reason, once; the frame is told; no fourth token", async () => {
  const s = load();
  s.page.deliver({ type: "embed:ready", page: "start", id: "d:1" });
  await tick();
  for (let i = 2; i <= 5; i++) {
    s.page.deliver({ type: "embed:authRequired", reason: "malformed", id: "d:" + i });
    await tick();
  }
  assert.equal(s.tokens.length, 3);
  assert.deepEqual(s.of("embed:error"), [{ type: "embed:error", reason: "malformed" }]);
  const stop = s.page.frame.posted.filter((p) => p.msg.type === "host:error");
  assert.deepEqual(stop.map((p) => p.msg.reason), ["malformed"]);
  assert.equal(s.embed.state, "error");
  assert.equal(s.embed.iframe.getAttribute("data-embedgate-reason"), "malformed");
  // The refusal that used up the retries is told first, then the error.
  const i = s.events.findIndex((e) => e.type === "embed:error");
  assert.equal(s.events[i - 1].type, "embed:authRequired");
});

test("embed:error from the frame (wrong_tenant, cookies_blocked, ...) is passed on once and stops getToken", async () => {
  const s = load();
  s.page.deliver({ type: "embed:error", reason: "wrong_tenant", id: "d:1" });
  s.page.deliver({ type: "embed:error", reason: "wrong_tenant", id: "d:2" });
  s.page.deliver({ type: "embed:ready", page: "start", id: "d:3" });
  await tick();
  assert.deepEqual(s.of("embed:error"), [{ type: "embed:error", reason: "wrong_tenant" }]);
  assert.equal(s.tokens.length, 0);
  assert.ok(!s.page.sent().includes("host:error"), "the frame already shows its final state");
});

test("getToken failing is embed:error get_token_failed", async () => {
  const s = load({ getToken: () => Promise.reject(new Error("backend down")) });
  s.page.deliver({ type: "embed:ready", page: "start", id: "d:1" });
  await tick();
  assert.deepEqual(s.of("embed:error"), [{ type: "embed:error", reason: "get_token_failed" }]);
  assert.deepEqual(s.page.sent(), ["host:error"]);
});

test("signOut() from the embed:authenticated listener: the frame goes to the sign-out page; resolves on signed_out", async () => {
  const s = load();
  let done;
  s.embed.on("embed:authenticated", () => {
    done = s.embed.signOut();
  });
  await signIn(s);
  assert.deepEqual(s.page.frame.navigations, [GATEWAY + "/.embed/signout?tenant=acme"]);
  assert.equal(s.embed.state, "signing-out");
  // Only the safety timeout is pending: no timer on the normal path.
  assert.deepEqual(Array.from(s.page.timers.values()).map((t) => t.ms), [15000]);
  let resolved = false;
  done.then(() => (resolved = true));
  // What the old documents say meanwhile does not reach the host.
  s.page.deliver({ type: "embed:authRequired", reason: "session_missing", id: "o:1" });
  s.page.deliver({ type: "embed:authenticated", sub: "jane@acme.test", expires_at: "2031-01-01T00:00:00Z" });
  await tick();
  assert.equal(resolved, false);
  s.page.deliver({ type: "embed:authRequired", reason: "signed_out", id: "x:1" });
  s.page.deliver({ type: "embed:authRequired", reason: "signed_out", id: "x:1" });
  s.page.deliver({ type: "embed:authRequired", reason: "signed_out", id: "x:2" });
  await tick();
  assert.equal(resolved, true);
  assert.deepEqual(s.of("embed:authRequired").map((e) => e.reason), ["signed_out"]);
  assert.equal(s.of("embed:authenticated").length, 1);
  assert.equal(s.embed.state, "signed-out");
  assert.equal(s.page.timers.size, 0, "the safety timeout is cleared");
  // Signed out means no token again, whatever the frame asks.
  s.page.deliver({ type: "embed:ready", page: "start", id: "y:1" });
  s.page.deliver({ type: "embed:authRequired", reason: "session_missing", id: "y:2" });
  await tick();
  assert.equal(s.tokens.length, 1);
  assert.equal(await s.embed.signOut(), undefined, "signing out again resolves at once");
});

test("signOut() right after mount, before the frame said anything", async () => {
  const s = load();
  const done = s.embed.signOut();
  assert.equal(s.embed.signOut(), done, "one sign-out at a time");
  assert.deepEqual(s.page.frame.navigations, [GATEWAY + "/.embed/signout?tenant=acme"]);
  s.page.deliver({ type: "embed:ready", page: "start", id: "d:1" });
  await tick();
  assert.equal(s.tokens.length, 0);
  s.page.deliver({ type: "embed:authRequired", reason: "signed_out", id: "x:1" });
  await done;
});

test("a token that arrives after signOut() began is never sent", async () => {
  let release;
  const s = load({ getToken: () => new Promise((r) => (release = r)) });
  s.page.deliver({ type: "embed:ready", page: "start", id: "d:1" });
  await tick();
  s.embed.signOut();
  release("late-token");
  await tick();
  assert.ok(!s.page.sent().includes("host:token"));
});

test("the app signing out by itself: signed_out is passed on and stops getToken", async () => {
  const s = load();
  await signIn(s);
  s.page.deliver({ type: "embed:authRequired", reason: "signed_out", id: "x:1" });
  s.page.deliver({ type: "embed:ready", page: "start", id: "y:1" });
  await tick();
  assert.deepEqual(s.of("embed:authRequired").map((e) => e.reason), ["signed_out"]);
  assert.equal(s.tokens.length, 1);
  assert.equal(s.embed.state, "signed-out");
});

test("the sign-out page failing rejects signOut() and is embed:error", async () => {
  const s = load();
  await signIn(s);
  const done = s.embed.signOut();
  s.page.deliver({ type: "embed:error", reason: "store_unavailable", id: "x:1" });
  await assert.rejects(done, /store_unavailable/);
  assert.deepEqual(s.of("embed:error").map((e) => e.reason), ["store_unavailable"]);
});

test("the safety timeout rejects a sign-out the frame never confirms; a later signOut() tries again", async () => {
  const s = load();
  const done = s.embed.signOut();
  s.page.fire(15000);
  await assert.rejects(done, /did not complete/);
  s.page.deliver({ type: "embed:ready", page: "start", id: "d:1" });
  await tick();
  assert.equal(s.tokens.length, 0, "still no token after a failed sign-out");
  s.embed.signOut();
  assert.equal(s.page.frame.navigations.length, 2);
});

test("destroy() resolves a pending sign-out and removes the iframe and the listener", async () => {
  const s = load();
  const done = s.embed.signOut();
  s.embed.destroy();
  await done;
  assert.equal(s.page.app.children.length, 0);
  assert.equal(s.page.listeners.size, 0);
});

test("messages from another origin or window are ignored", async () => {
  const s = load();
  s.page.deliver({ type: "embed:ready", page: "start" }, { origin: "https://evil.test" });
  s.page.deliver({ type: "embed:ready", page: "start" }, { source: {} });
  s.page.deliver({ type: "embed:resize", height: 4321 }, { origin: "https://evil.test" });
  await tick();
  assert.equal(s.tokens.length, 0);
  assert.equal(s.events.length, 0);
  assert.equal(s.embed.iframe.style.height, undefined);
});

test("embed:resize sets only the height", () => {
  const s = load();
  s.page.deliver({ type: "embed:resize", height: 321.2 });
  assert.deepEqual(s.embed.iframe.style, { height: "322px" });
});
