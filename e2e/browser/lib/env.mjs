// Where the sites are and what the Go side saw, from the variables that
// e2e/browser_helpers_test.go sets (runNodeSuite, browserVars).

import https from "node:https";
import { readFileSync } from "node:fs";

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the browser suite through go test (e2e/browser_test.go)`);
  return v;
};

/** The environment of one run. Getters, so that a file that only imports
 * the library (the example test) needs only the variables it uses. */
export const env = {
  /** https://portal.gate.test:PORT */
  get gateway() { return need("EMBEDGATE_GATEWAY"); },
  /** https://app.acme.test:PORT, the customer's page */
  get acme() { return need("EMBEDGATE_ACME"); },
  /** https://evil.other.test:PORT, a stranger */
  get evil() { return need("EMBEDGATE_EVIL"); },
  /** the browser's executable */
  get browser() { return need("EMBEDGATE_BROWSER"); },
  /** the PEM file of Caddy's internal root CA */
  get ca() { return need("EMBEDGATE_CA"); },
  /** where screenshots go: e2e/artifacts/<regime> */
  get artifacts() { return need("EMBEDGATE_ARTIFACTS"); },
  /** a scratch directory removed after the run */
  get tmp() { return need("EMBEDGATE_TMP"); },
  get control() { return need("EMBEDGATE_CONTROL"); },
};

async function call(method, path, body) {
  const res = await fetch(env.control + path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) throw new Error(`control ${method} ${path}: ${res.status} ${await res.text()}`);
  return res;
}

/** The Go side's record, each since the last reset(). */
export const control = {
  /** Forget minted tokens, upstream requests and logs; each scenario starts with it. */
  async reset() { await call("POST", "/reset"); },
  /** @returns {Promise<string[]>} the tokens the customer's backend minted */
  async tokens() { return (await call("GET", "/tokens")).json(); },
  /** @returns {Promise<{method: string, path: string, query?: string, subject?: string, tenant?: string}[]>}
   * the requests that reached the app behind the gateway */
  async upstream() { return (await call("GET", "/upstream")).json(); },
  /** the requests that reached the app signed in as subject */
  async upstreamFor(subject) { return (await this.upstream()).filter((r) => r.subject === subject); },
  /** @returns {Promise<string>} what the gateway logged (JSON lines) */
  async logs() { return (await call("GET", "/logs")).text(); },
  /**
   * Wait up to timeout ms until the logs hold a whole line for which
   * match(line) is true, and return every such line. The gateway's lines reach the Go
   * side through a pipe, and Caddy writes an access entry after the response
   * has gone, so a line can lag the answer the browser already has.
   * @param {string} what what is waited for, for the failure message
   * @param {(line: string) => boolean} match
   * @returns {Promise<string[]>}
   */
  async logLines(what, match, { timeout = 5_000 } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
      // The last line is whole only once its newline has come.
      const lines = (await this.logs()).split("\n").slice(0, -1).filter((l) => match(l));
      if (lines.length > 0) return lines;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for a log line: ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  },
  /** Reload the gateway with these embed_session lines ("" for the default). */
  async configure(extra) { await call("POST", "/config", { extra }); },
};

/**
 * A request to one of the sites from node, not from a browser: every host
 * resolves to 127.0.0.1 and only Caddy's internal CA is trusted.
 * @returns {Promise<{status: number, headers: import("node:http").IncomingHttpHeaders, body: string}>}
 */
export function siteRequest(url, { method = "GET", headers = {}, body } = {}) {
  const ca = readFileSync(env.ca);
  const lookup = (_host, opts, cb) =>
    opts && opts.all ? cb(null, [{ address: "127.0.0.1", family: 4 }]) : cb(null, "127.0.0.1", 4);
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers, ca, lookup, timeout: 10000 }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (data += c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on("error", reject);
    req.end(body);
  });
}
