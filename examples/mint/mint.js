// Mint a one-time embedgate SSO token in Node.js, with no dependencies.
// Usage: node mint.js <tenant> <subject>   (secret in EMBEDGATE_SECRET)
const crypto = require("node:crypto");

function mintEmbedToken(tenant, secret, sub, extra = {}) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: "HS256", typ: "JWT" });
  const body = b64({ iss: tenant, aud: tenant, sub, iat: now, exp: now + 60, jti: crypto.randomUUID(), ...extra });
  const sig = crypto.createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

const usage = "usage: node mint.js <tenant> <subject>   (secret in EMBEDGATE_SECRET)";
const [tenant, sub, ...rest] = process.argv.slice(2);
if (!tenant || !sub || rest.length || !process.env.EMBEDGATE_SECRET) {
  console.error(usage);
  process.exit(2);
}
console.log(mintEmbedToken(tenant, process.env.EMBEDGATE_SECRET, sub, { email: sub }));
