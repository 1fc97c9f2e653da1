// The README's run command alone shows a working embed in a browser: the
// customer page of Caddyfile.example on https://127.0.0.1:8444 frames the
// app on https://localhost:8443, signed in through the token API. Started
// by TestExampleEmbedInBrowser (e2e/example_test.go) with the example
// running on its fixed ports.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Session } from "../lib.mjs";

const HOST = "https://127.0.0.1:8444/";
const GATEWAY = "https://localhost:8443";

test("the example's customer page shows the app signed in, signs out, and explains a missing SDK", { timeout: 60_000 }, async () => {
  const s = await Session.launch();
  try {
    await s.open(HOST);
    await s.waitFor(GATEWAY + "/", "the app signed in inside the frame",
      () => !!document.body && document.body.innerText.includes("Hello, jane@example.com"), { timeout: 20_000 });
    await s.waitFor(s.page, "the host page saw embed:authenticated",
      () => document.getElementById("log").textContent === "signed in as jane@example.com");
    for (const u of s.seenURLs) assert.ok(!u.includes("embed_token") && !u.includes("eyJ"), `a token appeared in a URL: ${u}`);
    await s.screenshot("example-embed.png");

    // The page follows the SDK's events: signOut() ends in "signed out".
    await s.waitFor(s.page, "the sign-out button is enabled", () => !document.getElementById("signout").disabled, { timeout: 5_000 });
    await s.click(s.page, "#signout");
    await s.waitFor(s.page, "the host page says signed out", () => document.getElementById("log").textContent === "signed out");

    // When sdk.js cannot load (the gateway's certificate not accepted yet),
    // the page says what to do instead of showing only its heading.
    // (No cache: a cached sdk.js would never reach the interception.)
    await s.page.setCacheEnabled(false);
    await s.page.setRequestInterception(true);
    s.page.on("request", (r) => (r.url() === GATEWAY + "/.embed/sdk.js" ? r.abort() : r.continue()));
    await s.open(HOST);
    await s.waitFor(s.page, "the page explains the missing SDK", () => document.getElementById("log").textContent.includes("accept its certificate"));
  } catch (e) {
    const shot = await s.screenshot("FAILED-example").catch(() => "");
    e.message += `\nthe page says: ${await s.page.evaluate(() => document.getElementById("log")?.textContent).catch((e) => e.message)}` +
      (shot ? `\nscreenshot: ${shot}` : "");
    throw e;
  } finally {
    await s.close();
  }
});
