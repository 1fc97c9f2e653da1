// Run by e2e/npm_package_test.go inside the scratch project that installed
// the packed @embedgate/sdk: every entry imports in Node (as server-side
// rendering would) without touching a browser global at import time. Node
// has no customElements (the element entry checks for it with `in` and
// defines nothing then); window, document and HTMLElement throw when read,
// so reading one at import time fails the import.
for (const name of ["window", "document", "HTMLElement", "self"]) {
  Object.defineProperty(globalThis, name, {
    configurable: true,
    get() { throw new Error(`@embedgate/sdk touched ${name} at import time`); },
  });
}
const main = await import("@embedgate/sdk");
const element = await import("@embedgate/sdk/element");
const react = await import("@embedgate/sdk/react");
const report = {
  mount: typeof main.mount,
  events: main.events,
  tag: element.TAG,
  component: typeof react.EmbedGate,
  global: ["EmbedGate", "customElements"].filter((n) => Object.prototype.hasOwnProperty.call(globalThis, n)).length > 0,
};
console.log(JSON.stringify(report));
