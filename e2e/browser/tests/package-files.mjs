// Serves @embedgate/sdk's files (and React as ES modules) to the customer's
// page at <acme>/pkg/…, through the browser's request interception, so that
// the host pages element.html and react.html import the package as a
// bundler-free app would: sdk/ as it is in the repository (or, with
// EMBEDGATE_PKG_DIR, as npm installed it from the packed tarball), React
// through an import map. React 19 ships CommonJS only: each module is
// wrapped in an ES module here, with its named exports taken from node's
// own require of the same file. Development builds: only they run
// StrictMode's mount, unmount, mount.
//
// Not a test file (no .test.mjs): imported by the ones that need it.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { env } from "../lib.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "package.json"));
/** The package's folder: the repository's sdk/, or the installed tarball's. */
export const packageDir = () => process.env.EMBEDGATE_PKG_DIR || path.join(here, "..", "..", "..", "sdk");

// The CommonJS modules the page imports, by the URL the import map names,
// with what each require()s.
const CJS = {
  "react.mjs": { id: "react", file: "react/cjs/react.development.js", deps: {} },
  "scheduler.mjs": { id: "scheduler", file: "scheduler/cjs/scheduler.development.js", deps: {} },
  "react-dom.mjs": { id: "react-dom", file: "react-dom/cjs/react-dom.development.js", deps: { react: "react.mjs" } },
  "react-dom-client.mjs": {
    id: "react-dom/client", file: "react-dom/cjs/react-dom-client.development.js",
    deps: { react: "react.mjs", "react-dom": "react-dom.mjs", scheduler: "scheduler.mjs" },
  },
};

function wrapCJS({ id, file, deps }) {
  // React's exports map hides cjs/: find the file from its package.json.
  const [pkg, ...rest] = file.split("/");
  const source = readFileSync(path.join(path.dirname(require.resolve(pkg + "/package.json")), ...rest), "utf8");
  const names = Object.keys(require(id)).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n) && n !== "default");
  const imports = Object.entries(deps).map(([, url], i) => `import __d${i} from "/pkg/${url}";`).join("\n");
  const table = Object.keys(deps).map((name, i) => `${JSON.stringify(name)}: __d${i}`).join(", ");
  return `${imports}
const __deps = { ${table} };
const require = (n) => { if (!(n in __deps)) throw new Error("no module " + n); return __deps[n]; };
const module = { exports: {} };
const process = { env: { NODE_ENV: "development" } };
(function (exports, module, require, process) {
${source}
})(module.exports, module, require, process);
const __e = module.exports;
export default __e;
export const { ${names.join(", ")} } = __e;
`;
}

/** What <acme>/pkg/<rest> answers: a body and its type, or null. */
function packageFile(rest) {
  if (CJS[rest]) return { body: wrapCJS(CJS[rest]), type: "text/javascript" };
  const m = /^sdk\/([\w.-]+\.js)$/.exec(rest);
  if (!m) return null;
  return { body: readFileSync(path.join(packageDir(), m[1]), "utf8"), type: "text/javascript" };
}

/** Answer <acme>/pkg/… from the package's files; every other request goes on. */
export async function servePackage(s) {
  const prefix = env.acme + "/pkg/";
  await s.page.setRequestInterception(true);
  s.page.on("request", (req) => {
    if (req.isInterceptResolutionHandled()) return;
    if (!req.url().startsWith(prefix)) {
      req.continue();
      return;
    }
    let file = null;
    try {
      file = packageFile(new URL(req.url()).pathname.slice("/pkg/".length));
    } catch (e) {
      req.respond({ status: 500, contentType: "text/plain", body: String(e) });
      return;
    }
    if (!file) req.respond({ status: 404, contentType: "text/plain", body: "not in the package" });
    else req.respond({ status: 200, contentType: file.type, body: file.body, headers: { "Cache-Control": "no-store" } });
  });
}
