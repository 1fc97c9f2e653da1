// login_state and RFC 8693 token exchange in Chromium, against the env of
// e2e/login_state_test.go (TestLoginStateBrowser): tenant acme has
// login_state required, login_url on the customer's site (a login page
// that mints with the echoed state as nonce), and a subject_issuer, a mock
// identity provider whose access tokens the customer's backend trades for
// the SDK's tokens.

import assert from "node:assert/strict";
import { control, env, regime, scenario, Session, signIn, siteRequest } from "./lib.mjs";

const LOGIN_COOKIE = "__Host-embed_login";

/** The claims of a JWT, unverified. */
const claimsOf = (token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));

const loginCookies = async (s) => (await s.cookies()).filter((c) => c.name === LOGIN_COOKIE && c.value !== "");

/** The reason the gateway's gate page in the tab names. */
const gateReason = (s) => s.eval(s.page, () => document.querySelector('meta[name="embedgate-reason"]')?.content || "");

scenario("login round trip: a direct link goes to login_url with state, the login page mints with it as nonce, the token link signs in", async (s) => {
  await s.open(env.gateway + "/deals?tab=2");
  const at = new URL(s.page.url());
  assert.equal(at.origin + at.pathname, env.acme + "/api/login", "the direct link did not go to login_url");
  assert.equal(at.searchParams.get("redirect"), env.gateway + "/deals?tab=2");
  const state = at.searchParams.get("state");
  assert.match(state || "", /^[A-Za-z0-9_-]{43}$/, "no state of 256 random bits, base64url");

  // The browser keeps the nonce as a host-only, Secure, HttpOnly, Lax cookie of the gateway.
  const [c, ...more] = await loginCookies(s);
  assert.equal(more.length, 0);
  assert.deepEqual([c.value, c.domain, c.path, c.secure, c.httpOnly, c.sameSite], [state, new URL(env.gateway).hostname, "/", true, true, "Lax"]);

  // The user signs in; the page mints with nonce = state and sends the browser back.
  await s.click(s.page, "#signin");
  await s.waitFor(s.page, "the app greeting jane, top-level", () => document.getElementById("who")?.textContent === "jane@acme.test", { timeout: 15_000 });
  assert.equal(s.page.url(), env.gateway + "/deals?tab=2", "the token stayed in the address bar");
  assert.deepEqual(await loginCookies(s), [], "the spent nonce cookie was not cleared");
  assert.equal((await s.sessionCookies()).length, 1);

  const tokens = await control.tokens();
  assert.equal(tokens.length, 1);
  assert.equal(claimsOf(tokens[0]).nonce, state, "the login page's token does not carry the state as nonce");
  const seen = await control.upstreamFor("jane@acme.test");
  assert.ok(seen.some((r) => r.path === "/deals" && r.tenant === "acme"), `upstream: ${JSON.stringify(seen)}`);
  for (const u of await s.historyURLs()) assert.ok(!u.includes("embed_token"), `history holds the token: ${u}`);
});

scenario("an attacker's own valid token link, opened in a victim's fresh browser, is refused with state_mismatch and sets no session", async (attacker) => {
  // The attacker goes through the login page themselves and asks for the link.
  await attacker.open(env.gateway + "/deals");
  await attacker.eval(attacker.page, () => { document.getElementById("user").value = "mallory@acme.test"; });
  await attacker.click(attacker.page, "#link");
  const link = await attacker.waitFor(attacker.page, "the attacker's sign-in link", () => document.getElementById("magic")?.href);
  assert.ok(link.startsWith(env.gateway + "/deals?embed_token="), link);

  const victim = await Session.launch(regime);
  try {
    const res = await victim.page.goto(link, { waitUntil: "load", timeout: 20_000 });
    assert.equal(res.status(), 401);
    assert.equal(res.url(), link, "the refusal redirected (to the login page?)");
    // The gate page took the URL without the token: not in the address bar
    // or the history entry, and not in a Referer of the page's requests.
    assert.equal(await victim.page.evaluate(() => location.href), env.gateway + "/deals", "the token stayed in the address bar");
    assert.equal(await victim.page.evaluate(() => document.querySelector('meta[name="referrer"]')?.content), "no-referrer");
    assert.equal(await gateReason(victim), "state_mismatch");
    assert.deepEqual(await victim.sessionCookies(), [], "the victim's browser got a session");
    assert.deepEqual(await loginCookies(victim), []);
    const probe = await victim.page.goto(env.gateway + "/.embed/session", { waitUntil: "load", timeout: 20_000 });
    assert.equal(probe.status(), 401, "the victim's browser is signed in");
  } finally {
    await victim.close();
  }
  assert.deepEqual(await control.upstreamFor("mallory@acme.test"), [], "the attacker's identity reached the app");
  assert.match(await control.logs(), /"reason":"state_mismatch"/);

  // The link itself was valid, and the refusal spent nothing of it: in the
  // browser that asked for it, it signs in.
  await attacker.open(link);
  await attacker.waitFor(attacker.page, "mallory signed in in the attacker's own browser", () => document.getElementById("who")?.textContent === "mallory@acme.test");
});

scenario("the one-time token from an RFC 8693 token exchange signs the embed in, and is exchanged once", async (s) => {
  // The customer's backend trades the user's access token at the token API
  // (urn:ietf:params:oauth:grant-type:token-exchange) for the SDK's token.
  await signIn(s, "jane@acme.test");
  const seen = await control.upstreamFor("jane@acme.test");
  assert.ok(seen.length > 0 && seen[0].tenant === "acme", `upstream: ${JSON.stringify(seen)}`);

  const tokens = await control.tokens();
  assert.equal(tokens.length, regime.firstSignInTokens);
  const claims = claimsOf(tokens[0]);
  assert.deepEqual(
    Object.keys(claims).sort(), ["aud", "email", "exp", "iat", "iss", "jti", "name", "scope", "sub"],
    `the embed token holds claims of the access token it was not meant to: ${JSON.stringify(claims)}`);
  assert.deepEqual([claims.iss, claims.aud, claims.sub, claims.email, claims.scope], ["acme", "acme", "jane@acme.test", "jane@acme.test", "deals:read"]);
  assert.ok(claims.exp - claims.iat <= 120);

  // Once: the start page exchanged it; a second exchange is refused.
  const again = await siteRequest(env.gateway + "/.embed/exchange", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: tokens[0] }),
  });
  assert.equal(again.status, 401);
  assert.equal(JSON.parse(again.body).error_description, "replayed");
});
