/*! embedgate bridge.js: include in the embedded app, or let the gateway
 * inject it (inject_bridge). It tells the host page about the app's height
 * and path, and hands the app the host's init data. */
(() => {
  "use strict";
  if (window.EmbedBridge) return;
  // Filled in by the gateway per session: the parent origin bound into the
  // session (or, without one, the tenant's allowlist), the prefix, and,
  // with a live session, its tenant, sub and expires_at.
  const CONFIG = {"origins":[],"prefix":"/.embed"};
  const parent = window.parent;
  const framed = parent !== window;
  const origins = CONFIG.origins.slice();

  const post = (msg) => {
    if (!framed) return;
    for (const o of origins) {
      try {
        parent.postMessage(msg, o);
      } catch (_) {}
    }
  };

  // host:init {locale, theme}, exposed as EmbedBridge.init and announced
  // with the "embedgate:init" event on window.
  let init = null;
  const initListeners = new Set();
  const str = (v) => (typeof v === "string" ? v.slice(0, 200) : undefined);
  const onMessage = (ev) => {
    if (ev.source !== parent || !origins.includes(ev.origin)) return;
    const d = ev.data;
    if (!d || typeof d !== "object") return;
    if (d.type === "host:init") {
      init = Object.freeze({ locale: str(d.locale), theme: str(d.theme) });
      for (const fn of initListeners) {
        try {
          fn(init);
        } catch (e) {
          setTimeout(() => {
            throw e;
          });
        }
      }
      window.dispatchEvent(new CustomEvent("embedgate:init", { detail: init }));
    } else if (d.type === "host:signOut") {
      signOut();
    }
  };

  // The gateway's own URLs, resolved against this document's origin: a
  // relative URL would follow the document's base URL, which a <base> the
  // app lets through (HTML injection) can point at another site, taking
  // the sign-out (and the frame) there.
  const own = (path) => new URL(CONFIG.prefix + path, location.origin).href;

  const signOut = async () => {
    try {
      await fetch(own("/signout"), { method: "POST", credentials: "same-origin", cache: "no-store" });
    } catch (_) {}
    // The sign-out page ends whatever is left of the session, shows that
    // the user is signed out and tells the host embed:authRequired
    // {reason: "signed_out"}, after which the SDK asks for no token.
    window.location.replace(own("/signout") + (CONFIG.tenant ? "?tenant=" + encodeURIComponent(CONFIG.tenant) : ""));
  };

  // {{RESIZE_JS}}
  // The app's height is coalesced to one message per frame.
  let scheduled = false;
  const reportHeight = heightReporter(post);
  const measure = () => {
    if (!scheduled) return;
    scheduled = false;
    reportHeight();
  };
  const scheduleMeasure = () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(measure);
    setTimeout(measure, 100); // rAF is paused in hidden frames
  };

  // embed:navigate {path}: every change of the app's URL.
  let lastPath = null;
  const navigated = () => {
    const path = location.pathname + location.search + location.hash;
    if (path === lastPath) return;
    lastPath = path;
    post({ type: "embed:navigate", path });
  };

  const start = () => {
    window.addEventListener("message", onMessage);
    const ready = { type: "embed:ready", page: "app", path: location.pathname + location.search + location.hash };
    // Who is signed in: the SDK settles a sign-in with it when the start
    // page's embed:authenticated was lost.
    if (CONFIG.sub) Object.assign(ready, { sub: CONFIG.sub, expires_at: CONFIG.expires_at });
    post(ready);
    navigated();
    for (const m of ["pushState", "replaceState"]) {
      const orig = history[m];
      history[m] = function (...args) {
        const r = orig.apply(this, args);
        navigated();
        return r;
      };
    }
    window.addEventListener("popstate", navigated);
    window.addEventListener("hashchange", navigated);
    if (typeof ResizeObserver === "function") {
      const ro = new ResizeObserver(scheduleMeasure);
      ro.observe(document.documentElement);
      if (document.body) ro.observe(document.body);
    }
    window.addEventListener("load", scheduleMeasure);
    scheduleMeasure();
  };

  window.EmbedBridge = Object.freeze({
    get init() {
      return init;
    },
    onInit(fn) {
      if (typeof fn !== "function") throw new TypeError("EmbedBridge.onInit: fn must be a function");
      initListeners.add(fn);
      if (init) fn(init);
      return () => initListeners.delete(fn);
    },
    signOut,
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start, { once: true });
  } else {
    start();
  }
})();
