// page.js, the start, gate and sign-out pages' script, run by
// TestPageScript against a fake frame: the states it shows (their ids come
// from start.html and gate.html, with their shared parts), what it posts to
// the host, and what it fetches.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import vm from "node:vm";

const read = (f) => readFileSync(new URL("../" + f, import.meta.url), "utf8");
// The files as bridge.go serves them: each shared part in at its placeholder.
const parts = { "{{PAGE_HEAD}}": "page-head.html", "{{SIGNIN_STATES}}": "signin-states.html", "// {{RESIZE_JS}}": "resize.js" };
const include = (f) => Object.entries(parts).reduce((src, [p, part]) => src.replace(p, () => read(part).trim()), read(f));
const script = include("page.js");
const templates = { start: include("start.html"), gate: include("gate.html"), signout: include("gate.html") };
const HOST = "https://app.acme.test";

function element(id, hidden) {
  return { id, hidden, textContent: "", listeners: {}, addEventListener(t, f) { this.listeners[t] = f; } };
}

// run starts page.js in a fake frame. fetches answers each fetch by path.
function run(page, cfg = {}, opts = {}) {
  const html = templates[page];
  const els = new Map();
  for (const m of html.matchAll(/<(\w+) id="([^"]+)"( data-state)?( [^>]*)?>/g)) {
    els.set(m[2], element(m[2], / hidden/.test(m[4] || "")));
    els.get(m[2]).isState = !!m[3];
  }
  const config = { page, tenant: "acme", next: "/deals", origins: [HOST], prefix: "/.embed", ...cfg };
  els.set("embedgate-config", { textContent: JSON.stringify(config) });
  const posted = [];
  const navigations = [];
  const requests = [];
  const timers = new Map();
  let timerID = 0;
  const listeners = [];
  const parent = { postMessage: (msg, origin) => posted.push({ msg: JSON.parse(JSON.stringify(msg)), origin }) };
  const rootAttrs = {};
  const document = {
    getElementById: (id) => els.get(id) || null,
    querySelectorAll: () => [...els.values()].filter((e) => e.isState),
    documentElement: { setAttribute: (k, v) => (rootAttrs[k] = v), getBoundingClientRect: () => ({ height: opts.height ?? 80 }) },
    body: { scrollHeight: opts.height ?? 80 },
    referrer: "",
  };
  if (opts.storageAPI !== false) {
    document.hasStorageAccess = async () => !!opts.hasAccess;
    document.requestStorageAccess = async () => {
      if (!opts.grant) throw new Error("denied");
    };
  }
  const answers = opts.answers || {};
  const window = {
    location: { replace: (u) => navigations.push(u), ancestorOrigins: [HOST] },
    addEventListener: (t, f) => t === "message" && listeners.push(f),
  };
  window.parent = opts.topLevel ? window : parent;
  const replaced = [];
  const sandbox = {
    window, document, URL, JSON,
    history: { state: null, replaceState: (state, title, url) => replaced.push(url) },
    navigator: { permissions: { query: async () => ({ state: opts.permission || "prompt" }) } },
    crypto: { randomUUID: () => "doc" },
    ResizeObserver: class { observe() {} },
    setTimeout: (fn, ms) => (timers.set(++timerID, { fn, ms }), timerID),
    clearTimeout: (id) => timers.delete(id),
    fetch: async (url, init = {}) => {
      requests.push({ url, method: init.method || "GET", body: init.body && JSON.parse(init.body) });
      const list = answers[url] || [{ status: 404, body: {} }];
      const a = list.length > 1 ? list.shift() : list[0];
      return { status: a.status, ok: a.status >= 200 && a.status < 300, json: async () => a.body };
    },
  };
  vm.createContext(sandbox);
  vm.runInContext(script, sandbox);
  const f = {
    posted, navigations, requests, timers, replaced,
    state: () => rootAttrs["data-embedgate-state"],
    visible: () => [...els.values()].filter((e) => e.isState && !e.hidden).map((e) => e.id),
    el: (id) => els.get(id),
    types: () => posted.map((p) => p.msg.type + (p.msg.reason ? ":" + p.msg.reason : "")),
    host: (data, origin = HOST, source = parent) => listeners.forEach((fn) => fn({ data, origin, source })),
    settle: () => new Promise((r) => setTimeout(r, 5)),
    fire: () => {
      for (const [id, t] of [...timers]) {
        timers.delete(id);
        t.fn();
      }
    },
  };
  return f;
}

const session = { "/.embed/session": [{ status: 200, body: { sub: "jane@acme.test", expires_at: "2030-01-01T00:00:00Z" } }] };
const noSession = { "/.embed/session": [{ status: 401, body: {} }] };
const ok = { "/.embed/exchange": [{ status: 204 }] };

test("start: ready (repeated under one id until a token comes), exchange, authenticated, next", async () => {
  const f = run("start", {}, { answers: { ...ok, ...session } });
  assert.equal(f.state(), "working");
  assert.deepEqual(f.posted, [{ msg: { id: "doc:1", type: "embed:ready", page: "start" }, origin: HOST }]);
  f.fire(); // a lost ready is posted again, same id
  assert.deepEqual(f.posted.map((p) => p.msg.id), ["doc:1", "doc:1"]);
  f.host({ type: "host:token", token: "t1" });
  await f.settle();
  assert.equal(f.timers.size, 0, "the answer stops the repeats");
  assert.deepEqual(f.requests[0], { url: "/.embed/exchange", method: "POST", body: { token: "t1", tenant: "acme", parent_origin: HOST } });
  assert.deepEqual(f.posted.at(-1).msg, { type: "embed:authenticated", sub: "jane@acme.test", expires_at: "2030-01-01T00:00:00Z" });
  assert.deepEqual(f.navigations, ["/deals"]);
});

test("start: a refused token says so; host:error stops it in a final state", async () => {
  const f = run("start", {}, { answers: { "/.embed/exchange": [{ status: 401, body: { error_description: "malformed" } }] } });
  f.host({ type: "host:token", token: "bad" });
  await f.settle();
  assert.equal(f.state(), "failed");
  assert.equal(f.types().at(-1), "embed:authRequired:malformed");
  assert.ok(f.posted.at(-1).msg.id, "repeated until answered");
  f.host({ type: "host:error", reason: "malformed" });
  assert.deepEqual(f.visible(), ["stopped"]);
  assert.equal(f.el("stopped-reason").textContent, "malformed");
  assert.equal(f.timers.size, 0);
  f.host({ type: "host:token", token: "another" });
  await f.settle();
  assert.equal(f.requests.length, 1, "no exchange once stopped");
});

test("start: cookie not kept, access refused: storage_access_denied", async () => {
  const f = run("start", {}, { answers: { ...ok, ...noSession } });
  f.host({ type: "host:token", token: "t1" });
  await f.settle();
  assert.equal(f.state(), "storage");
  assert.ok(f.types().includes("embed:resize"), "the frame fits its button");
  await f.el("storage-button").listeners.click();
  await f.settle();
  assert.equal(f.state(), "storage-denied");
  assert.equal(f.types().at(-1), "embed:error:storage_access_denied");
});

test("start: access granted, cookie still dropped: one more token, then cookies_blocked", async () => {
  const f = run("start", {}, { grant: true, answers: { ...ok, ...noSession } });
  f.host({ type: "host:token", token: "t1" });
  await f.settle();
  await f.el("storage-button").listeners.click();
  await f.settle();
  assert.equal(f.types().at(-1), "embed:authRequired:storage_access");
  f.host({ type: "host:token", token: "t2" });
  await f.settle();
  assert.equal(f.state(), "cookies-blocked");
  assert.equal(f.types().at(-1), "embed:error:cookies_blocked");
  f.host({ type: "host:token", token: "t3" });
  await f.settle();
  assert.equal(f.requests.filter((r) => r.url === "/.embed/exchange").length, 2, "no further token burned");
});

test("start: cookie not kept with access already active, or no Storage Access API: cookies_blocked", async () => {
  for (const opts of [{ hasAccess: true }, { storageAPI: false }]) {
    const f = run("start", {}, { ...opts, answers: { ...ok, ...noSession } });
    f.host({ type: "host:token", token: "t1" });
    await f.settle();
    assert.equal(f.state(), "cookies-blocked", JSON.stringify(opts));
    assert.equal(f.types().at(-1), "embed:error:cookies_blocked");
  }
});

test("start: a grant given before is used without a click", async () => {
  const f = run("start", {}, { permission: "granted", grant: true, answers: { ...ok, ...session } });
  f.host({ type: "host:token", token: "t1" });
  await f.settle();
  assert.deepEqual(f.navigations, ["/deals"]);
});

test("start with a tenant error: final state and embed:error wrong_tenant, tokens ignored", async () => {
  const f = run("start", { error: "wrong_tenant", reason: "unknown_tenant" });
  assert.deepEqual(f.visible(), ["config-error"]);
  assert.equal(f.el("config-reason").textContent, "unknown_tenant");
  assert.deepEqual(f.types(), ["embed:resize", "embed:error:wrong_tenant"]);
  f.host({ type: "host:token", token: "t1" });
  await f.settle();
  assert.equal(f.requests.length, 0);
});

test("gate: tells its reason and its height", () => {
  const f = run("gate", { reason: "replayed" });
  assert.deepEqual(f.visible(), ["gate"]);
  assert.deepEqual(f.types(), ["embed:resize", "embed:authRequired:replayed"]);
  assert.deepEqual(f.posted[0].msg, { type: "embed:resize", height: 80 });
});

test("gate: takes the URL without the token at once, framed or not; other pages keep theirs", () => {
  assert.deepEqual(run("gate", { next: "/deals?x=1" }).replaced, ["/deals?x=1"]);
  assert.deepEqual(run("gate", { next: "/deals?x=1" }, { topLevel: true }).replaced, ["/deals?x=1"]);
  assert.deepEqual(run("start").replaced, []);
  assert.deepEqual(run("signout").replaced, []);
});

test("gate: a page not laid out yet (height 0) posts no embed:resize, so the iframe never collapses", () => {
  const f = run("gate", { reason: "replayed" }, { height: 0 });
  assert.deepEqual(f.types(), ["embed:authRequired:replayed"]);
});

test("host:signOut sends the page to the sign-out page", () => {
  const f = run("gate", { reason: "session_missing" });
  f.host({ type: "host:signOut" });
  assert.deepEqual(f.navigations, ["/.embed/signout?tenant=acme"]);
});

test("sign-out page: POSTs the sign-out, then says so and tells signed_out", async () => {
  const f = run("signout", { reason: "signed_out" }, { answers: { "/.embed/signout?tenant=acme": [{ status: 204 }] } });
  assert.equal(f.state(), "signing-out");
  await f.settle();
  assert.deepEqual(f.requests.map((r) => r.method + " " + r.url), ["POST /.embed/signout?tenant=acme"]);
  assert.deepEqual(f.visible(), ["gate"]);
  assert.equal(f.types().at(-1), "embed:authRequired:signed_out");
  f.host({ type: "host:token", token: "t1" });
  await f.settle();
  assert.equal(f.requests.length, 1, "the sign-out page takes no token");
});

test("sign-out page: store unavailable is retried, then embed:error", async () => {
  const down = { status: 503, body: { error_description: "store_unavailable" } };
  const f = run("signout", {}, { answers: { "/.embed/signout?tenant=acme": [down, down, down, down] } });
  for (let i = 0; i < 4; i++) {
    await f.settle();
    f.fire();
  }
  await f.settle();
  assert.equal(f.requests.length, 3);
  assert.equal(f.state(), "signout-failed");
  assert.ok(f.types().includes("embed:error:store_unavailable"));
});

test("sign-out page opened top-level signs nothing out", async () => {
  const f = run("signout", {}, { topLevel: true });
  await f.settle();
  assert.equal(f.requests.length, 0);
  assert.deepEqual(f.visible(), ["not-framed-page"]);
});

test("messages from another origin are ignored", async () => {
  const f = run("start", {}, { answers: { ...ok, ...session } });
  f.host({ type: "host:token", token: "t1" }, "https://evil.test");
  f.host({ type: "host:signOut" }, "https://evil.test");
  await f.settle();
  assert.equal(f.requests.length, 0);
  assert.equal(f.navigations.length, 0);
});
