// One scenario's browser (a Chromium, or a user context of the test file's
// Firefox) with one tab, as a test uses it: pages and frames, host
// events, waits with explicit timeouts, cookies with their partition, real
// clicks, storage-access grants, screenshots and the network evidence.

import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { after } from "node:test";
import path from "node:path";
import { env } from "./env.mjs";
import { launchBrowser } from "./launch.mjs";
import { currentRegime } from "./regimes.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * p, or a rejection after ms: an evaluation in a frame that Chromium is
 * swapping between processes can hang until the protocol timeout (30 s),
 * longer than any wait here; the caller tries again instead.
 */
function within(p, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** The site (scheme and registrable domain) of an origin; the test hosts
 * are all name.site.test, so the last two labels. */
export function siteOf(origin) {
  const u = new URL(origin);
  return u.protocol + "//" + u.hostname.split(".").slice(-2).join(".");
}

// The request's type ("document", "fetch", …); puppeteer's BiDi requests
// do not know it.
function resourceType(req) {
  try {
    return req.resourceType();
  } catch {
    return "";
  }
}

// Firefox takes seconds to start (Chromium well under one), so a test file
// keeps one Firefox and gives each scenario a user context of its own: its
// own cookies, storage, cache and permissions. Closed after the file's tests.
let sharedFirefox = null;
after(async () => {
  if (sharedFirefox) await sharedFirefox.then((b) => b.browser.close()).catch(() => {});
});

/** The byte length of every file of the net log now (Firefox writes one per process). */
function logSizes(netlog) {
  const dir = path.dirname(netlog);
  const sizes = new Map();
  for (const f of readdirSync(dir)) if (f.startsWith(path.basename(netlog))) sizes.set(f, statSync(path.join(dir, f)).size);
  return sizes;
}

export class Session {
  /**
   * A fresh browser for one scenario: a new Chromium with a new profile, or
   * a new user context in this file's Firefox. With launch options (a
   * per-site cookie block: see launchBrowser), a Firefox of its own, since
   * its settings would reach every other scenario of the file.
   * @param {import("./regimes.mjs").Regime} [regime]
   * @param {import("./launch.mjs").LaunchOptions} [options]
   */
  static async launch(regime = currentRegime(), options = {}) {
    const own = regime.engine !== "firefox" || (options.blockCookies || []).length > 0;
    if (!own) {
      sharedFirefox ??= launchBrowser(regime);
      const launched = await sharedFirefox;
      const context = await launched.browser.createBrowserContext();
      const page = await context.newPage();
      return new Session(regime, launched, context, page, { shared: true, logStart: logSizes(launched.netlog) });
    }
    const launched = await launchBrowser(regime, options);
    const context = launched.browser.defaultBrowserContext();
    const [page] = await launched.browser.pages();
    return new Session(regime, launched, context, page || (await context.newPage()), { shared: false, logStart: new Map() });
  }

  /**
   * @param {{shared: boolean, logStart: Map<string, number>}} where whether the browser is the file's shared
   *   Firefox (closing the session closes only its user context), and where its net log stood when this
   *   session began (Firefox; empty for a browser of the session's own)
   */
  constructor(regime, { browser, dir, netlog, trust }, context, page, { shared, logStart }) {
    this.regime = regime;
    /** @type {import("puppeteer-core").Browser} */
    this.browser = browser;
    /** @type {import("puppeteer-core").BrowserContext} this session's cookies, storage and permissions */
    this.context = context;
    this.shared = shared;
    this.logStart = logStart;
    /** @type {import("puppeteer-core").Page} the one tab */
    this.page = page;
    this.dir = dir;
    this.netlog = netlog;
    /** how Caddy's CA is trusted: "nss" or "acceptInsecureCerts" */
    this.trust = trust;
    this.closed = false;
    /** set once the Storage Access button was clicked, with the permission granted, in this session */
    this.storageAccessGranted = false;
    /** @type {string[]} every URL in the browser's network and navigation events, every frame */
    this.seenURLs = [];
    /** @type {{url: string, status: number, type: string, frameURL: string}[]} type is "" in Firefox */
    this.seenResponses = [];
    page.on("request", (r) => {
      this.seenURLs.push(r.url());
      for (const prev of r.redirectChain()) this.seenURLs.push(prev.url());
    });
    page.on("response", (r) => {
      this.seenURLs.push(r.url());
      const loc = r.headers().location;
      if (loc) this.seenURLs.push(loc);
      this.seenResponses.push({ url: r.url(), status: r.status(), type: resourceType(r.request()), frameURL: r.frame()?.url() || "" });
    });
    page.on("framenavigated", (f) => this.seenURLs.push(f.url()));
  }

  /** Load url in the tab and wait for its load event. */
  async open(url, { timeout = 20_000 } = {}) {
    await this.page.goto(url, { timeout, waitUntil: "load" });
  }

  /** Reload the tab (the host page loads anew, and so does its frame). */
  async reload({ timeout = 20_000 } = {}) {
    await this.page.reload({ timeout, waitUntil: "load" });
  }

  /** Evaluate fn(...args) in the tab or a frame (a Page, a Frame, or a frame URL prefix). */
  async eval(where, fn, ...args) {
    return (await this.resolve(where)).evaluate(fn, ...args);
  }

  /**
   * fn evaluated in where, each evaluation bounded to 3 s. A string where
   * is every live frame whose URL starts with it, at once: when Chromium
   * moves a frame to another process, puppeteer can list the old Frame
   * beside the new one, and an evaluation in the old one never answers.
   * The first truthy answer wins; without one, the first error is thrown.
   */
  async evalAny(where, fn, args, what) {
    const frames = typeof where === "string" ? this.frames(where) : [where];
    if (frames.length === 0) throw new Error(`no frame at ${where} yet`);
    const results = await Promise.allSettled(frames.map((f) => within(f.evaluate(fn, ...args), 3_000, what)));
    const hit = results.find((r) => r.status === "fulfilled" && r.value);
    if (hit) return hit.value;
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    return undefined;
  }

  /** @returns {Promise<import("puppeteer-core").Page | import("puppeteer-core").Frame>} */
  async resolve(where) {
    if (typeof where !== "string") return where;
    return this.frame(where);
  }

  /** The frame whose URL (as the browser reports it) starts with prefix. */
  async frame(prefix, { timeout = 15_000 } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const f = this.frames(prefix)[0];
      if (f) return f;
      if (Date.now() > deadline) {
        throw new Error(`no frame at ${prefix} after ${timeout} ms; frames: ${this.page.frames().map((f) => f.url()).join(", ")}`);
      }
      await sleep(50);
    }
  }

  /** Every live frame whose URL starts with prefix. */
  frames(prefix) {
    return this.page.frames().filter((f) => !f.detached && f.url().startsWith(prefix));
  }

  /** The frame inside the iframe element that selector finds in the tab. */
  async frameOf(selector, { timeout = 15_000 } = {}) {
    const el = await this.page.waitForSelector(selector, { timeout });
    const f = await el.contentFrame();
    if (!f) throw new Error(`${selector} has no frame`);
    return f;
  }

  /**
   * Poll fn in where (see eval) every 50 ms until it returns something
   * truthy, and return that (evalAny: in every frame where names). Errors
   * while polling (no frame yet, a frame between two documents, an
   * evaluation that hangs for more than 3 s) count as not yet. Fails after
   * timeout ms, naming what.
   */
  async waitFor(where, what, fn, { timeout = 10_000, args = [] } = {}) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
      try {
        const v = await this.evalAny(where, fn, args, `an evaluation for ${what}`);
        if (v) return v;
        last = undefined;
      } catch (e) {
        last = e;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeout} ms waiting for ${what}` +
          (last ? `; last error: ${last.message}` : "") + `\nhost events: ${await this.eventsJSON()}`);
      }
      await sleep(50);
    }
  }

  /**
   * Poll fn() in node every 50 ms until it returns something truthy, and
   * return that; an error thrown by fn fails at once. Fails after timeout
   * ms, naming what.
   */
  async until(what, fn, { timeout = 10_000 } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}\nhost events: ${await this.eventsJSON()}`);
      await sleep(50);
    }
  }

  /** @returns {Promise<object[]>} the SDK events the page in the tab recorded (window.__events) */
  async events() {
    return this.page.evaluate(() => window.__events || []);
  }

  /** The recorded events as JSON, for failure messages (never throws). */
  async eventsJSON() {
    try {
      return JSON.stringify(await this.events());
    } catch (e) {
      return `(unreadable: ${e.message})`;
    }
  }

  /** Wait until the tab's page recorded an event that matches pred(e). */
  async waitForEvent(what, pred, { timeout = 15_000 } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const ev = (await this.events().catch(() => [])).find(pred);
      if (ev) return ev;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}\nhost events: ${await this.eventsJSON()}`);
      await sleep(50);
    }
  }

  /**
   * Every cookie the browser holds, partitioned ones included, as
   * {name, value, domain, path, secure, httpOnly, sameSite, partition}:
   * partition is the top-level site the cookie is kept under
   * ("https://acme.test"), undefined for an unpartitioned cookie.
   */
  async cookies() {
    if (this.regime.engine === "chrome") {
      return (await this.context.cookies()).map((c) => ({
        name: c.name, value: c.value, domain: c.domain, path: c.path, secure: c.secure, httpOnly: c.httpOnly,
        sameSite: c.sameSite, partition: c.partitionKey ? c.partitionKey.sourceOrigin : undefined,
        partitionOpaque: !!c.partitionKeyOpaque,
      }));
    }
    // WebDriver BiDi's storage.getCookies without a source origin returns
    // every partition's cookies without saying which; asked per top-level
    // site, it returns that partition's. puppeteer keeps the per-partition
    // call on its (pinned) user context.
    const uc = this.context.userContext;
    const key = (c) => `${c.name}\n${c.domain}\n${c.path}`;
    const partitionOf = new Map();
    for (const site of [env.acme, env.evil, env.gateway]) {
      for (const c of await uc.getCookies({}, site)) partitionOf.set(key(c), siteOf(site));
    }
    return (await uc.getCookies({})).map((c) => ({
      name: c.name, value: c.value.value, domain: c.domain, path: c.path, secure: c.secure, httpOnly: c.httpOnly,
      sameSite: c.sameSite[0].toUpperCase() + c.sameSite.slice(1), partition: partitionOf.get(key(c)), partitionOpaque: false,
    }));
  }

  /** The gateway's session cookies. */
  async sessionCookies() {
    return (await this.cookies()).filter((c) => c.name === "__Host-embed_session" && c.value !== "");
  }

  /**
   * Grant the storage-access permission to embedded in pages of topLevel,
   * as the user's "allow" in the browser's prompt would (CDP
   * Browser.setPermission; headless Chromium has no prompt to answer).
   */
  async grantStorageAccess(topLevel, embedded) {
    if (this.regime.engine !== "chrome") throw new Error("grantStorageAccess: Chromium only");
    // The override lasts as long as the CDP session that set it: this one
    // stays attached until the browser closes.
    this.permissions ??= await this.browser.target().createCDPSession();
    await this.permissions.send("Browser.setPermission", {
      permission: { name: "storage-access" }, setting: "granted", origin: topLevel, embeddedOrigin: embedded,
    });
  }

  /**
   * A real click on selector in where: the mouse moves to the element's
   * centre and presses (CDP Input.dispatchMouseEvent in Chromium, BiDi
   * input.performActions in Firefox), so the page gets user activation.
   */
  async click(where, selector, { timeout = 10_000 } = {}) {
    const target = await this.resolve(where);
    const el = await target.waitForSelector(selector, { visible: true, timeout });
    await el.click();
  }

  /** Chromium's session history of the tab (CDP); Firefox has no such call, so []. */
  async historyURLs() {
    if (this.regime.engine !== "chrome") return [];
    const cdp = await this.page.createCDPSession();
    const { entries } = await cdp.send("Page.getNavigationHistory");
    await cdp.detach();
    return entries.flatMap((e) => [e.url, e.userTypedURL]);
  }

  /**
   * Every URL the browser's network stack logged for this session: each
   * request, redirect and navigation of every frame and process (Chromium's
   * net log, complete once the browser closed, so this closes it; Firefox's
   * MOZ_LOG nsHttp, written as it goes, from where it stood at the start).
   */
  async netLogURLs() {
    if (this.regime.engine === "chrome") {
      await this.close();
      const text = readFileSync(this.netlog, "utf8");
      return [...text.matchAll(/"(?:url|original_url|location)":"([^"]+)"/g)].map((m) => m[1]);
    }
    const dir = path.dirname(this.netlog);
    let text = "";
    for (const [f] of logSizes(this.netlog)) {
      text += readFileSync(path.join(dir, f)).subarray(this.logStart.get(f) || 0).toString("utf8");
    }
    return [...text.matchAll(/\b(?:https?|wss?):\/\/[^\s"'<>\])]+/g)].map((m) => m[0]);
  }

  /** A new tab in this session's browser context. */
  newPage() {
    return this.context.newPage();
  }

  /** A full-page PNG of the tab in the artifacts directory; returns its path. */
  async screenshot(name) {
    const p = path.join(env.artifacts, name.endsWith(".png") ? name : name + ".png");
    const png = await this.page.screenshot({ fullPage: true, type: "png" });
    writeFileSync(p, png);
    return p;
  }

  /** Close the browser, or this session's user context in a shared one. */
  async close() {
    if (this.closed) return;
    this.closed = true;
    if (this.shared) await this.context.close().catch(() => {});
    else await this.browser.close().catch(() => {});
  }
}
