// The browser regimes the suite proves, by the name e2e/browser_test.go
// passes in EMBEDGATE_REGIME. What a regime changes on the gateway's side
// (the no-CHIPS header rewrite) is in the Go table; what it changes in the
// browser, and what the tests may then expect, is here.

/**
 * @typedef {object} Regime
 * @property {string} name
 * @property {"chrome"|"firefox"} engine  puppeteer's browser: CDP or WebDriver BiDi
 * @property {boolean} partitioned  the session cookie is partitioned under the host page's site
 * @property {boolean} storageAccessClick  the first sign-in in a browser needs a granted storage-access
 *   permission and a click on the start page's button; later loads must not (Activate-Storage-Access: load)
 * @property {number} firstSignInTokens  tokens the first sign-in takes (the one exchanged before the
 *   grant sets a cookie that the browser drops)
 * @property {boolean} thirdPartyCookies  the browser keeps unpartitioned third-party cookies
 * @property {"blocked"|"kept"|"partitioned"} plainCookie  what becomes of a cookie without Partitioned
 *   that the signed-in app sets in its frame (in Chromium without CHIPS the frame has storage access by then)
 * @property {string} blockedFrameURL  the prefix of the URL a frame blocked by frame-ancestors shows
 */

/** @type {Record<string, Regime>} */
export const regimes = {
  // Headless default: third-party cookies blocked, the CHIPS cookie kept.
  chromium: {
    name: "chromium", engine: "chrome", partitioned: true, storageAccessClick: false, firstSignInTokens: 1, thirdPartyCookies: false,
    plainCookie: "blocked", blockedFrameURL: "chrome-error://",
  },
  // Third-party cookies allowed (the user's setting); CHIPS still partitions.
  "chromium-3pc": {
    name: "chromium-3pc", engine: "chrome", partitioned: true, storageAccessClick: false, firstSignInTokens: 1, thirdPartyCookies: true,
    plainCookie: "kept", blockedFrameURL: "chrome-error://",
  },
  // The gateway's Set-Cookie loses Partitioned (Caddyfile rewrite): the
  // cookie is dropped until the frame has storage access.
  "chromium-nochips": {
    name: "chromium-nochips", engine: "chrome", partitioned: false, storageAccessClick: true, firstSignInTokens: 2, thirdPartyCookies: false,
    plainCookie: "kept", blockedFrameURL: "chrome-error://",
  },
  // Firefox ESR, Total Cookie Protection (cookieBehavior 5): every
  // third-party cookie is kept under the top-level site's partition.
  firefox: {
    name: "firefox", engine: "firefox", partitioned: true, storageAccessClick: false, firstSignInTokens: 1, thirdPartyCookies: false,
    plainCookie: "partitioned", blockedFrameURL: "about:neterror?e=cspBlocked",
  },
};

/** The regime named by EMBEDGATE_REGIME. */
export function currentRegime() {
  const name = process.env.EMBEDGATE_REGIME || "chromium";
  const r = regimes[name];
  if (!r) throw new Error(`EMBEDGATE_REGIME=${name}: not one of ${Object.keys(regimes).join(", ")}`);
  return r;
}
