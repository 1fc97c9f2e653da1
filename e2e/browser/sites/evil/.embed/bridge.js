// The stranger's stand-in for the gateway's bridge.js: a page of the app
// whose <base> points here must never run it (signin.test.mjs).
window.__strangerScript = true;
