// Shared by the tests that import the package in Node, as server-side
// rendering does: each browser global named becomes a trap that records
// every read (and reads undefined). Call it before the first import of the
// package; the array it returns lists the reads.

export function trapBrowserGlobals(names) {
  const touched = [];
  for (const name of names) {
    Object.defineProperty(globalThis, name, {
      configurable: true,
      get() {
        touched.push(name);
        return undefined;
      },
    });
  }
  return touched;
}
