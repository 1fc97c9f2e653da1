// Starting a browser for a regime: Debian's Chromium over CDP or
// firefox-esr over WebDriver BiDi, both through puppeteer-core, each with a
// fresh profile, every host name mapped to 127.0.0.1, Caddy's internal CA
// trusted through an NSS database (certutil), a network log for the
// token-in-URL checks, and, for one scenario, a per-site cookie block.

import puppeteer from "puppeteer-core";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import path from "node:path";
import { env } from "./env.mjs";

const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--window-size=1200,900",
  "--host-resolver-rules=MAP * 127.0.0.1",
];

// puppeteer also sets fission.webContentIsolationStrategy 0 (one content
// process for all sites, which its BiDi input needs): a run that must prove
// something under site isolation starts Firefox with prefs of its own.
// Beyond the automation prefs puppeteer writes: Total Cookie Protection,
// every name resolved to loopback, no DNS over HTTPS, no HTTP/3, no OCSP
// (the internal CA has no responder), no captive-portal or connectivity
// probes.
const FIREFOX_PREFS = {
  "network.cookie.cookieBehavior": 5,
  "network.dns.forceResolve": "127.0.0.1",
  "network.trr.mode": 5,
  "network.http.http3.enable": false,
  "security.OCSP.enabled": 0,
  "network.captive-portal-service.enabled": false,
  "network.connectivity-service.enabled": false,
};

/** Trust the CA in a new NSS database in dir; false when certutil is missing. */
function trustCA(dir) {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync("certutil", ["-N", "-d", "sql:" + dir, "--empty-password"], { stdio: "pipe" });
  } catch (e) {
    if (e.code === "ENOENT") return false;
    throw e;
  }
  execFileSync("certutil", ["-A", "-d", "sql:" + dir, "-t", "C,,", "-n", "embedgate-e2e-root", "-i", env.ca], { stdio: "pipe" });
  return true;
}

/**
 * @typedef {object} LaunchOptions
 * @property {string[]} [blockCookies]  origins whose cookies the user blocked in the browser's settings,
 *   wherever they are embedded, storage access or not
 */

/**
 * Launch the regime's browser with a fresh profile under env.tmp.
 * @param {import("./regimes.mjs").Regime} regime
 * @param {LaunchOptions} [options]
 * @returns {Promise<{browser: import("puppeteer-core").Browser, dir: string, netlog: string, trust: string}>}
 */
export async function launchBrowser(regime, { blockCookies = [] } = {}) {
  const dir = mkdtempSync(path.join(env.tmp, regime.name + "-"));
  const profile = path.join(dir, "profile");
  const home = path.join(dir, "home");
  mkdirSync(profile, { recursive: true });
  const firefox = regime.engine === "firefox";
  // Chromium on Linux reads locally trusted roots from $HOME/.pki/nssdb,
  // Firefox from its profile.
  let trust = "nss";
  if (!trustCA(firefox ? profile : path.join(home, ".pki", "nssdb"))) {
    if (process.env.CI === "true") throw new Error("certutil not installed (apt-get install libnss3-tools)");
    trust = "acceptInsecureCerts";
  }
  const common = {
    executablePath: env.browser,
    headless: true,
    userDataDir: profile,
    defaultViewport: { width: 1200, height: 900 },
    acceptInsecureCerts: trust !== "nss",
    protocolTimeout: 30_000,
    timeout: 30_000,
  };
  let netlog;
  let browser;
  if (firefox) {
    // MOZ_LOG nsHttp:3 writes every request's URL, in the parent process
    // (netlog.moz_log) and each content process (netlog.child-N.moz_log),
    // unbuffered (sync), so that it can be read while Firefox runs.
    netlog = path.join(dir, "netlog");
    const prefs = { ...FIREFOX_PREFS };
    if (blockCookies.length) {
      // The user's per-site "Block" under Cookies and Site Data, Manage
      // Exceptions: the permission manager's "cookie" permission, 2 =
      // deny, here from a defaults file (the format of Firefox's own
      // defaults/permissions) rather than a permissions.sqlite.
      const file = path.join(dir, "permissions");
      writeFileSync(file, blockCookies.map((o) => `origin\tcookie\t2\t${o}\n`).join(""));
      prefs["permissions.manager.defaultsUrl"] = "file://" + file;
    }
    browser = await puppeteer.launch({
      ...common,
      browser: "firefox",
      env: { ...process.env, HOME: home, MOZ_LOG: "sync,nsHttp:3", MOZ_LOG_FILE: netlog },
      extraPrefsFirefox: prefs,
    });
  } else {
    netlog = path.join(dir, "netlog.json");
    const prefs = {};
    if (regime.thirdPartyCookies) {
      // The user's "allow third-party cookies" setting, as Chromium
      // stores it (cookie_controls_mode 0: no blocking).
      Object.assign(prefs, { cookie_controls_mode: 0, block_third_party_cookies: false });
    }
    if (blockCookies.length) {
      // The user's per-site "not allowed to use cookies" (Settings, Site
      // settings, third-party cookies: a site under "Not allowed"), as
      // Chromium stores it: a cookies content-setting exception, 2 = block,
      // for the site wherever it is embedded.
      const exceptions = {};
      for (const origin of blockCookies) exceptions[origin + ",*"] = { setting: 2 };
      prefs.content_settings = { exceptions: { cookies: exceptions } };
    }
    if (Object.keys(prefs).length) {
      mkdirSync(path.join(profile, "Default"), { recursive: true });
      writeFileSync(path.join(profile, "Default", "Preferences"), JSON.stringify({ profile: prefs }));
    }
    browser = await puppeteer.launch({
      ...common,
      browser: "chrome",
      env: { ...process.env, HOME: home },
      args: [...CHROMIUM_FLAGS, "--log-net-log=" + netlog, "--net-log-capture-mode=Default"],
    });
  }
  return { browser, dir, netlog, trust };
}
