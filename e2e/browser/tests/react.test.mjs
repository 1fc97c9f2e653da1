// The React component (issue 10): @embedgate/sdk/react's EmbedGate under
// React.StrictMode (mount, unmount, mount), rendered bundler-free by the
// customer's page (sites/acme/react.html), signs in once and leaves one
// iframe and one live embed; unmounting removes it.

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { control, env, regime, scenario, waitSignedIn } from "../lib.mjs";
import { servePackage } from "./package-files.mjs";

scenario("<EmbedGate> under StrictMode signs in once: one iframe, one embed:authenticated, one token, no leaked mount", async (s) => {
  await servePackage(s);
  const errors = [];
  s.page.on("pageerror", (e) => errors.push(String(e.message || e)));
  s.page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await s.open(`${env.acme}/react.html?sub=${encodeURIComponent("jane@acme.test")}`);
  await s.until("the page's module to render", async () => {
    if (errors.length) throw new Error(`the React page failed: ${errors.join("; ")}`);
    return s.page.evaluate(() => window.__rendered === true);
  });
  await waitSignedIn(s);
  await sleep(1_000);
  const got = await s.page.evaluate(() => ({
    iframes: document.querySelectorAll("iframe").length,
    className: document.querySelector("#main iframe").className,
    // embedRef is called again for the same embed (StrictMode re-runs effects): count distinct ones.
    embeds: new Set(window.__embeds).size,
    states: [...new Set(window.__embeds)].map((e) => e.state),
    authenticated: window.__events.filter((e) => e.type === "embed:authenticated").length,
    mints: window.__mints,
  }));
  assert.equal(got.embeds, 2, "StrictMode (React's development build) did not mount, unmount and mount again");
  assert.equal(got.iframes, 1, "StrictMode's double mount left a second iframe");
  assert.equal(got.className, "react-frame");
  assert.equal(got.authenticated, 1);
  assert.equal(got.mints, regime.firstSignInTokens, "StrictMode's first mount burned a token");
  assert.equal((await control.tokens()).length, regime.firstSignInTokens);
  // The first mount was destroyed: its iframe is gone from the page.
  const live = await s.page.evaluate(() => [...new Set(window.__embeds)].filter((e) => e.iframe.isConnected).length);
  assert.equal(live, 1, `live embeds: ${live} (states ${got.states.join(", ")})`);

  await s.page.evaluate(() => window.root.unmount());
  assert.equal(await s.page.evaluate(() => document.querySelectorAll("iframe").length), 0, "unmount left the iframe");
});
