/*! embedgate sdk.js: mount an embedgate app in your page.
 *
 *   const embed = EmbedGate.mount({
 *     target: "#app", src: "https://portal.example.com/deals", tenant: "acme",
 *     getToken: () => fetch("/embed-token", { method: "POST" }).then((r) => r.json()).then((j) => j.token),
 *   });
 *
 * Types: sdk.d.ts next to this file. */
(function (global) {
  "use strict";
  const PREFIX = "/.embed"; // the gateway's prefix, filled in when served
  // Tokens delivered in a row without embed:authenticated before the SDK
  // stops asking getToken (a misconfigured backend must not loop).
  const MAX_TOKEN_ATTEMPTS = 3;
  const MAX_HEIGHT = 100000;
  const SIGNOUT_FALLBACK_MS = 3000;
  const SIGNOUT_TIMEOUT_MS = 15000;

  const isLoopback = (host) =>
    host === "localhost" || host.endsWith(".localhost") || host === "[::1]" || /^127(\.\d{1,3}){3}$/.test(host);

  function resolveTarget(target) {
    const el = typeof target === "string" ? document.querySelector(target) : target;
    if (!el || typeof el.appendChild !== "function") {
      throw new TypeError("EmbedGate.mount: target must be an element, or a selector that matches one");
    }
    return el;
  }

  function mount(options) {
    const { target, src, tenant, getToken, autoResize = true, title, init } = options || {};
    const container = resolveTarget(target);
    if (typeof tenant !== "string" || tenant === "") throw new TypeError("EmbedGate.mount: tenant is required");
    if (typeof getToken !== "function") throw new TypeError("EmbedGate.mount: getToken must be a function");
    let url;
    try {
      url = new URL(src, document.baseURI);
    } catch (_) {
      throw new TypeError("EmbedGate.mount: src must be a URL");
    }
    if (!(url.protocol === "https:" || (url.protocol === "http:" && isLoopback(url.hostname)))) {
      throw new TypeError("EmbedGate.mount: src must be an https URL");
    }
    // Every message to the frame names this exact origin as its target.
    const origin = url.origin;
    const start = new URL(PREFIX + "/start", origin);
    start.searchParams.set("tenant", tenant);
    start.searchParams.set("next", url.pathname + url.search + url.hash);

    const iframe = document.createElement("iframe");
    iframe.setAttribute("allow", "storage-access");
    iframe.title = typeof title === "string" && title ? title : "Embedded app";
    iframe.style.display = "block";
    iframe.style.width = "100%";
    iframe.style.border = "0";
    iframe.src = start.href;

    const listeners = new Map();
    let destroyed = false;
    let signedOut = false;
    let attempts = 0;
    let fetching = false;
    let pendingSignOut = null;

    const emit = (type, data) => {
      for (const fn of Array.from(listeners.get(type) || [])) {
        try {
          fn(data);
        } catch (e) {
          setTimeout(() => {
            throw e;
          });
        }
      }
    };
    const send = (msg) => {
      const w = iframe.contentWindow;
      if (w && !destroyed) w.postMessage(msg, origin);
    };

    const deliverToken = async () => {
      if (fetching || destroyed || signedOut) return;
      if (attempts >= MAX_TOKEN_ATTEMPTS) {
        console.error("embedgate: " + attempts + " tokens in a row were refused; not asking getToken again");
        return;
      }
      attempts++;
      fetching = true;
      let token;
      try {
        token = await getToken();
      } catch (e) {
        console.error("embedgate: getToken failed", e);
        return;
      } finally {
        fetching = false;
      }
      if (typeof token !== "string" || token === "") {
        console.error("embedgate: getToken must resolve to a token string");
        return;
      }
      send({ type: "host:token", token });
    };

    const finishSignOut = () => {
      if (!pendingSignOut) return;
      clearTimeout(pendingSignOut.fallback);
      clearTimeout(pendingSignOut.timeout);
      const done = pendingSignOut.resolve;
      pendingSignOut = null;
      done();
    };

    const onMessage = (ev) => {
      if (destroyed || ev.origin !== origin || ev.source !== iframe.contentWindow) return;
      const d = ev.data;
      if (!d || typeof d !== "object" || typeof d.type !== "string" || !d.type.startsWith("embed:")) return;
      switch (d.type) {
        case "embed:ready":
          if (init && typeof init === "object") {
            send({ type: "host:init", locale: init.locale, theme: init.theme });
          }
          if (d.page === "start") {
            if (pendingSignOut && pendingSignOut.viaStart) {
              pendingSignOut.viaStart = false;
              send({ type: "host:signOut" });
            } else if (pendingSignOut) {
              finishSignOut();
            } else {
              deliverToken();
            }
          }
          break;
        case "embed:authenticated":
          attempts = 0;
          break;
        case "embed:authRequired":
          if (pendingSignOut) finishSignOut();
          else deliverToken();
          break;
        case "embed:resize":
          if (autoResize && typeof d.height === "number" && isFinite(d.height) && d.height >= 0) {
            iframe.style.height = Math.min(Math.ceil(d.height), MAX_HEIGHT) + "px";
          }
          break;
      }
      emit(d.type, d);
    };
    window.addEventListener("message", onMessage);
    container.appendChild(iframe);

    return {
      iframe,
      on(type, fn) {
        if (typeof fn !== "function") throw new TypeError("EmbedGate: on(type, fn) needs a function");
        if (!listeners.has(type)) listeners.set(type, new Set());
        listeners.get(type).add(fn);
        return () => {
          const set = listeners.get(type);
          if (set) set.delete(fn);
        };
      },
      signOut() {
        if (destroyed) return Promise.resolve();
        signedOut = true;
        if (pendingSignOut) return pendingSignOut.promise;
        const p = {};
        p.promise = new Promise((resolve, reject) => {
          p.resolve = resolve;
          // An app page without bridge.js cannot hear host:signOut: then
          // sign out through the start page.
          p.fallback = setTimeout(() => {
            if (pendingSignOut !== p) return;
            p.viaStart = true;
            iframe.src = start.href;
          }, SIGNOUT_FALLBACK_MS);
          p.timeout = setTimeout(() => {
            if (pendingSignOut !== p) return;
            clearTimeout(p.fallback);
            pendingSignOut = null;
            reject(new Error("embedgate: sign-out did not complete"));
          }, SIGNOUT_TIMEOUT_MS);
        });
        pendingSignOut = p;
        send({ type: "host:signOut" });
        return p.promise;
      },
      destroy() {
        if (destroyed) return;
        destroyed = true;
        window.removeEventListener("message", onMessage);
        listeners.clear();
        finishSignOut(); // a pending signOut() resolves: the frame is gone
        iframe.remove();
      },
    };
  }

  global.EmbedGate = Object.freeze({ mount });
})(typeof window !== "undefined" ? window : globalThis);
