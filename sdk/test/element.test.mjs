// <embed-gate> where a page has custom elements: defined on import, mounts
// the SDK with its attributes, dispatches the SDK's events on itself, takes
// tokens from token-url (POST, credentials) or element.getToken.
import assert from "node:assert/strict";
import { test } from "node:test";

import { FakeElement, GATEWAY, fakePage, tick } from "./fakedom.mjs";

const page = fakePage();
const registry = new Map();
class StubHTMLElement extends FakeElement {
  constructor() {
    super("embed-gate", page.document);
    this.dispatched = [];
    this.isConnected = false;
  }
  dispatchEvent(ev) {
    this.dispatched.push(ev);
    return true;
  }
}
Object.assign(globalThis, {
  window: page.window,
  document: page.document,
  HTMLElement: StubHTMLElement,
  customElements: {
    get: (name) => registry.get(name),
    define: (name, cls) => registry.set(name, cls),
  },
});

const fetches = [];
globalThis.fetch = async (url, init) => {
  fetches.push({ url, init });
  return { ok: true, status: 200, json: async () => ({ token: "from-url" }) };
};

const { defineEmbedGate } = await import("@embedgate/sdk/element");

function connect(attrs) {
  const El = registry.get("embed-gate");
  const el = new El();
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.isConnected = true;
  el.connectedCallback();
  return el;
}

test("importing in a page with custom elements defines <embed-gate>", () => {
  const El = registry.get("embed-gate");
  assert.equal(typeof El, "function");
  assert.ok(El.prototype instanceof StubHTMLElement);
  assert.equal(defineEmbedGate(), El, "defining again returns the same class");
  for (const a of ["src", "tenant", "token-url", "prefix"]) assert.ok(El.observedAttributes.includes(a), a);
});

test("it mounts with its attributes, posts to token-url with credentials, and dispatches the SDK's events", async () => {
  const el = connect({ src: GATEWAY + "/deals", tenant: "acme", "token-url": "/embed-token", "frame-title": "Deals" });
  assert.equal(el.embed, null, "mounting waits a microtask");
  await tick();
  const iframe = el.children[0];
  assert.equal(iframe.tagName, "IFRAME");
  assert.equal(iframe.src, GATEWAY + "/.embed/start?tenant=acme&next=%2Fdeals");
  assert.equal(iframe.title, "Deals");
  assert.equal(el.embed.iframe, iframe);

  page.deliver({ type: "embed:ready", page: "start", id: "e:1" });
  await tick();
  assert.equal(fetches.length, 1);
  assert.equal(fetches[0].url, "/embed-token");
  assert.equal(fetches[0].init.method, "POST");
  assert.equal(fetches[0].init.credentials, "include");
  assert.deepEqual(page.frame.posted.at(-1), { msg: { type: "host:token", token: "from-url" }, target: GATEWAY });

  const ready = el.dispatched.find((e) => e.type === "embed:ready");
  assert.ok(ready instanceof CustomEvent);
  assert.equal(ready.detail.page, "start");

  // signOut() goes through the SDK.
  const done = el.signOut();
  assert.deepEqual(page.frame.navigations, [GATEWAY + "/.embed/signout?tenant=acme"]);
  page.deliver({ type: "embed:authRequired", reason: "signed_out", id: "e:2" });
  await done;
  assert.ok(el.dispatched.some((e) => e.type === "embed:authRequired" && e.detail.reason === "signed_out"));

  el.isConnected = false;
  el.disconnectedCallback();
  assert.equal(el.embed, null);
  assert.equal(el.children.length, 0, "the iframe is removed");
});

test("element.getToken overrides token-url", async () => {
  const el = connect({ src: GATEWAY + "/deals", tenant: "acme", "token-url": "/embed-token" });
  el.getToken = () => "from-property";
  await tick();
  const before = fetches.length;
  page.deliver({ type: "embed:ready", page: "start", id: "g:1" });
  await tick();
  assert.equal(fetches.length, before);
  assert.equal(page.frame.posted.at(-1).msg.token, "from-property");
  el.disconnectedCallback();
});

test("without src or tenant it waits; setting them mounts", async () => {
  const el = connect({ tenant: "acme" });
  await tick();
  assert.equal(el.embed, null);
  assert.equal(await el.signOut(), undefined, "signOut() with nothing mounted resolves");
  el.setAttribute("src", GATEWAY + "/x");
  el.attributeChangedCallback("src", null, GATEWAY + "/x");
  await tick();
  assert.ok(el.embed);
  el.disconnectedCallback();
});
