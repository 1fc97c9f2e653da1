// The part of the module pages (element.html, react.html) that is the same
// on both: the records the tests read (window.__events, window.__mints),
// set up on import, and getToken, the call to the customer's backend that
// mints for ?sub=NAME (default jane@acme.test).
window.__events = [];
window.__mints = 0;
const params = new URLSearchParams(location.search);

export async function getToken() {
  window.__mints++;
  const res = await fetch("/api/embed-token", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sub: params.get("sub") || "jane@acme.test" }) });
  return (await res.json()).token;
}
