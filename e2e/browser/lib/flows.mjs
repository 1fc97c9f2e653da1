// What most scenarios do: a test with a fresh browser and a clean record on
// the Go side, the customer's page opened and signed in (through the
// Storage Access click where the regime needs it), and event counting.

import { test } from "node:test";
import { control, env } from "./env.mjs";
import { currentRegime } from "./regimes.mjs";
import { Session } from "./session.mjs";

/**
 * A node test with a fresh browser: fn(session, t). The Go side's record
 * (tokens, upstream requests, logs) starts empty; on failure a screenshot
 * FAILED-<name>.png goes to the artifacts and the host events into the
 * error; the browser is closed in every case. launch: the browser's
 * settings for this scenario (see lib/launch.mjs).
 * @param {string} name
 * @param {(s: Session, t: import("node:test").TestContext) => Promise<void>} fn
 * @param {{timeout?: number, launch?: import("./launch.mjs").LaunchOptions}} [options]
 */
export function scenario(name, fn, { timeout = 90_000, launch = {} } = {}) {
  return test(name, { timeout }, async (t) => {
    await control.reset();
    const s = await Session.launch(currentRegime(), launch);
    try {
      await fn(s, t);
    } catch (e) {
      if (!s.closed) {
        const shot = await s.screenshot("FAILED-" + name.replace(/[^a-z0-9]+/gi, "-").slice(0, 80)).catch(() => "");
        if (!String(e.message).includes("host events:")) e.message += `\nhost events: ${await s.eventsJSON()}`;
        if (shot) e.message += `\nscreenshot: ${shot}`;
      }
      throw e;
    } finally {
      await s.close();
    }
  });
}

/** The URL of the customer's page for sub (query adds parameters, e.g. "&manual"). */
export const hostURL = (sub = "jane@acme.test", query = "") => `${env.acme}/?sub=${encodeURIComponent(sub)}${query}`;

/**
 * Wait until mount signs in: embed:authenticated reaches the host and the
 * app in the frame at path greets sub, with bridge.js running and its
 * embed:ready seen. Where the regime needs it (no CHIPS), the first sign-in
 * in a browser waits for the gateway's Storage Access button, grants the
 * permission and clicks, as a user would; at any other time that button
 * showing is a failure: the grant must stick (Activate-Storage-Access: load).
 * @returns {Promise<import("puppeteer-core").Frame>} the app's frame
 */
export async function waitSignedIn(s, { sub = "jane@acme.test", mount = "main", path = "/deals", timeout = 15_000 } = {}) {
  const click = s.regime.storageAccessClick && !s.storageAccessGranted;
  const authenticated = (e) => e.mount === mount && e.type === "embed:authenticated";
  // The gateway's frame (start or gate page) that shows the button, if any.
  const asking = async () => {
    for (const f of s.frames(env.gateway + "/")) {
      const shown = await f.evaluate(() => { const el = document.getElementById("storage"); return !!el && !el.hidden; }).catch(() => false);
      if (shown) return f;
    }
    return null;
  };
  const found = await s.until(click ? "the Storage Access button in the gateway's frame" : `embed:authenticated on mount ${mount}`, async () => {
    const f = await asking();
    if (f && !click) {
      throw new Error("the gateway's frame asks for the Storage Access click again: the earlier grant did not stick " +
        "(a load with Sec-Fetch-Storage-Access: active must be answered with Activate-Storage-Access: load)");
    }
    return f || (!click && (await s.events().catch(() => [])).some(authenticated));
  }, { timeout });
  if (click) {
    // The user clicks and allows access when the browser asks.
    await s.grantStorageAccess(env.acme, env.gateway);
    await s.click(found, "#storage-button");
    s.storageAccessGranted = true;
    await s.waitForEvent(`embed:authenticated on mount ${mount}`, authenticated, { timeout });
  }
  const frame = env.gateway + path;
  await s.waitFor(frame, `the app at ${path} greeting ${sub}`,
    (sub) => document.getElementById("who")?.textContent === sub && !!window.EmbedBridge, { args: [sub], timeout });
  await s.waitForEvent(`embed:ready from the app on mount ${mount}`, (e) => e.mount === mount && e.type === "embed:ready" && e.page === "app");
  return s.frame(frame);
}

/** Open the customer's page for sub and wait until its embed is signed in. */
export async function signIn(s, sub = "jane@acme.test") {
  await s.open(hostURL(sub));
  return waitSignedIn(s, { sub });
}

/** How many events of type mount recorded. */
export const countEvents = (events, mount, type) => events.filter((e) => e.mount === mount && e.type === type).length;

/** The height of the host page's iframe for mount, in CSS pixels. */
export const iframeHeight = (s, mount = "main") =>
  s.page.evaluate((m) => document.querySelector(`#${m} iframe`).getBoundingClientRect().height, mount);
