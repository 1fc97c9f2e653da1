// Importing any entry of the package in Node (server-side rendering) reads
// nothing of a browser's and defines no global. Every browser global is a
// trap that records a read; the entries are imported only after that.
import assert from "node:assert/strict";
import { test } from "node:test";

import { trapBrowserGlobals } from "./browser-globals.mjs";

const touched = trapBrowserGlobals(["window", "self", "document", "HTMLElement", "location", "top", "parent", "frames"]);

test("importing every entry touches no browser global", async () => {
  const before = new Set(Reflect.ownKeys(globalThis));
  const main = await import("@embedgate/sdk");
  const element = await import("@embedgate/sdk/element");
  const react = await import("@embedgate/sdk/react");
  assert.deepEqual(touched, []);

  assert.equal(typeof main.mount, "function");
  assert.ok(main.events.includes("embed:error"));
  assert.equal(typeof element.defineEmbedGate, "function");
  assert.equal(element.TAG, "embed-gate");
  assert.equal(typeof react.EmbedGate, "function");
  assert.equal(react.default, react.EmbedGate);

  // No EmbedGate global and no registry symbol left behind.
  const added = Reflect.ownKeys(globalThis).filter((k) => !before.has(k));
  assert.deepEqual(added, []);
  assert.equal(Symbol.for("embedgate.sdk") in globalThis, false);
  // Without custom elements there is nothing to define.
  assert.equal(element.defineEmbedGate(), undefined);
  assert.deepEqual(touched, []);
});

test("the package.json exports name a types file for each entry", async () => {
  const { readFile, access } = await import("node:fs/promises");
  const root = new URL("../", import.meta.url);
  const pkg = JSON.parse(await readFile(new URL("package.json", root), "utf8"));
  assert.equal(pkg.name, "@embedgate/sdk");
  assert.equal(pkg.types, "./sdk.d.ts");
  for (const entry of [".", "./element", "./react"]) {
    const e = pkg.exports[entry];
    assert.ok(e.types && e.default, entry);
    for (const f of [e.types, e.default]) {
      await access(new URL(f, root));
      assert.ok(pkg.files.includes(f.slice(2)), f + " is packed");
    }
  }
  assert.equal(pkg.peerDependencies.react !== undefined, true);
});
