// The ES module face of sdk.js. Imported as a module, sdk.js defines no
// global: it leaves its API under a registry symbol, taken (and removed)
// here, right after it runs. Every entry of the package imports this file,
// so sdk.js runs once per copy of the package.
import "./sdk.js";

const key = Symbol.for("embedgate.sdk");
const api = globalThis[key];
delete globalThis[key];
if (!api) throw new Error("@embedgate/sdk: sdk.js did not load");

export const mount = api.mount;
export const events = api.events;
