// Verify an embedgate identity assertion (X-Embed-Assertion) in Node.js
// with the built-in crypto module only, against the gateway's JWKS.
// Usage: node verify.mjs <jwks-url> <issuer> <audience> <token>
// Prints the claims as JSON, or the reason for refusing and exit status 1.
import { createPublicKey, verify } from "node:crypto";

const LEEWAY = 30; // seconds of clock skew allowed on exp and iat

const json64 = (s) => JSON.parse(Buffer.from(s, "base64url").toString());

// An app caches the key set (the gateway allows five minutes) and fetches
// again when a token names a kid it does not know.
export async function fetchKeys(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`jwks: status ${res.status}`);
  return (await res.json()).keys;
}

export function verifyAssertion(token, keys, { issuer, audience, now = Date.now() / 1000 }) {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error("not a JWT");
  const [h, p, s] = parts;
  const header = json64(h);
  if (header.alg !== "ES256" && header.alg !== "EdDSA") throw new Error(`algorithm ${header.alg} refused`);
  // The key must be published with the token's algorithm: no alg confusion.
  const jwk = keys.find((k) => k.kid === header.kid && k.alg === header.alg);
  if (!jwk) throw new Error(`no published key ${header.kid}`);
  const key = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, format: "jwk" });
  const data = Buffer.from(`${h}.${p}`);
  const sig = Buffer.from(s, "base64url");
  const ok = header.alg === "ES256"
    ? verify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, sig)
    : verify(null, data, key, sig);
  if (!ok) throw new Error("bad signature");
  const claims = json64(p);
  if (claims.iss !== issuer) throw new Error("wrong issuer");
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.includes(audience)) throw new Error("wrong audience");
  if (typeof claims.exp !== "number" || claims.exp <= now - LEEWAY) throw new Error("expired");
  if (typeof claims.iat !== "number" || claims.iat > now + LEEWAY) throw new Error("issued in the future");
  if (typeof claims.sub !== "string" || typeof claims.tenant !== "string") throw new Error("no identity");
  return claims;
}

const [jwksUrl, issuer, audience, token, ...rest] = process.argv.slice(2);
if (!token || rest.length) {
  console.error("usage: node verify.mjs <jwks-url> <issuer> <audience> <token>");
  process.exit(2);
}
try {
  const keys = await fetchKeys(jwksUrl);
  console.log(JSON.stringify(verifyAssertion(token, keys, { issuer, audience })));
} catch (e) {
  console.error(`refused: ${e.message}`);
  process.exit(1);
}
