// The custom element (issue 10): <embed-gate src tenant> from
// @embedgate/sdk/element, imported as an ES module by the customer's page
// (sites/acme/element.html), signs in, dispatches the SDK's events as DOM
// CustomEvents of the same names (the message in detail), and signOut()
// ends the session.

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { env, scenario, waitSignedIn } from "../lib.mjs";
import { servePackage } from "./package-files.mjs";

scenario("<embed-gate> signs in, dispatches the SDK's events as DOM CustomEvents, and el.signOut() signs out", async (s) => {
  await servePackage(s);
  await s.open(`${env.acme}/element.html?sub=${encodeURIComponent("jane@acme.test")}`);
  await waitSignedIn(s);
  // The app's first embed:resize may come just after the signed-in state.
  await s.waitForEvent("an embed:resize CustomEvent", (e) => e.domType === "embed:resize", { timeout: 5_000 });
  const events = await s.events();
  const types = new Set(events.map((e) => e.domType));
  for (const t of ["embed:ready", "embed:authenticated", "embed:resize"]) assert.ok(types.has(t), `no ${t} CustomEvent on the element`);
  assert.ok(events.every((e) => e.isCustomEvent && e.domType === e.type), "an event is not a CustomEvent named as the SDK names it");
  assert.equal(events.find((e) => e.type === "embed:authenticated").sub, "jane@acme.test");
  assert.equal(events.filter((e) => e.type === "embed:authenticated").length, 1);
  assert.equal(await s.page.evaluate(() => document.querySelectorAll("embed-gate iframe").length), 1);
  assert.equal(await s.page.evaluate(() => window.embedEl.embed.state), "signed-in");

  const before = events.length;
  const mints = await s.page.evaluate(() => window.__mints);
  await s.page.evaluate(() => window.embedEl.signOut());
  assert.equal(await s.page.evaluate(() => window.embedEl.embed.state), "signed-out");
  await s.waitFor(env.gateway + "/.embed/signout", "the signed-out page",
    () => document.querySelector("#gate:not([hidden])")?.dataset.why === "signed_out", { timeout: 3_000 });
  await sleep(500);
  const after = (await s.events()).slice(before).filter((e) => e.type === "embed:authRequired");
  assert.deepEqual(after.map((e) => [e.domType, e.reason]), [["embed:authRequired", "signed_out"]]);
  assert.equal(await s.page.evaluate(() => window.__mints), mints, "getToken was called after signOut()");
});
