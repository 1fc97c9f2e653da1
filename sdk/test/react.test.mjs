// The React component renders on the server (renderToString) as its empty
// container, without reading a browser global or mounting anything.
import assert from "node:assert/strict";
import { test } from "node:test";

import { trapBrowserGlobals } from "./browser-globals.mjs";

const touched = trapBrowserGlobals(["window", "document", "HTMLElement"]);

test("server rendering gives the container only", async () => {
  const { createElement } = await import("react");
  const { renderToString } = await import("react-dom/server");
  const { EmbedGate } = await import("@embedgate/sdk/react");
  const html = renderToString(
    createElement(EmbedGate, {
      src: "https://portal.gate.test/deals",
      tenant: "acme",
      getToken: () => "never-called",
      containerClassName: "embed",
    }),
  );
  assert.equal(html, '<div class="embed" data-embedgate-host=""></div>');
  assert.deepEqual(touched, []);
});
