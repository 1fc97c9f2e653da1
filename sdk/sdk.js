/*! embedgate sdk.js: mount an embedgate app in your page.
 *
 *   const embed = EmbedGate.mount({
 *     target: "#app", src: "https://portal.example.com/deals", tenant: "acme",
 *     getToken: () => fetch("/embed-token", { method: "POST" }).then((r) => r.json()).then((j) => j.token),
 *   });
 *
 * One file, two ways in: the gateway serves it at <prefix>/sdk.js for a
 * classic <script> (the EmbedGate global), and the npm package
 * @embedgate/sdk imports it as a module (import { mount } from
 * "@embedgate/sdk"). Types: sdk.d.ts next to this file. */
(function (global) {
  "use strict";
  const PREFIX = "/.embed"; // the gateway's prefix, filled in when served; mount({prefix}) overrides it
  // Tokens delivered in a row without a sign-in before the SDK stops asking
  // getToken (a misconfigured backend must not loop) and reports embed:error.
  const MAX_TOKEN_ATTEMPTS = 3;
  const MAX_HEIGHT = 100000;
  // A safety net only: signOut() resolves when the frame says it is done.
  const SIGNOUT_TIMEOUT_MS = 15000;
  const SIGNED_OUT = "signed_out";
  const EVENTS = Object.freeze([
    "embed:ready",
    "embed:authenticated",
    "embed:authRequired",
    "embed:resize",
    "embed:navigate",
    "embed:error",
  ]);
  // Defaults that any host CSS beats: the lowest cascade layer, and :where()
  // has no specificity.
  const DEFAULT_CSS =
    "@layer embedgate{:where(iframe[data-embedgate]){display:block;width:100%;border:0}:where(embed-gate){display:block}}";
  const STYLED = Symbol.for("embedgate.styles");

  const isLoopback = (host) =>
    host === "localhost" || host.endsWith(".localhost") || host === "[::1]" || /^127(\.\d{1,3}){3}$/.test(host);

  function resolveTarget(target) {
    const el = typeof target === "string" ? document.querySelector(target) : target;
    if (!el || typeof el.appendChild !== "function") {
      throw new TypeError("EmbedGate.mount: target must be an element, or a selector that matches one");
    }
    return el;
  }

  // addDefaultStyles puts the defaults into doc once (also across copies of
  // this file). A <style> first in <head> declares its layer before any of
  // the host's; where the host's CSP refuses inline styles (no sheet), a
  // constructed sheet, which CSP does not govern, takes its place.
  function addDefaultStyles(doc) {
    if (doc[STYLED]) return;
    doc[STYLED] = true;
    const style = doc.createElement("style");
    style.setAttribute("data-embedgate", "");
    style.textContent = DEFAULT_CSS;
    (doc.head || doc.documentElement).prepend(style);
    if (style.sheet) return;
    style.remove();
    try {
      const sheet = new doc.defaultView.CSSStyleSheet();
      sheet.replaceSync(DEFAULT_CSS);
      doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
    } catch (_) {}
  }

  function frameURLs(src, tenant, prefix) {
    let url;
    try {
      url = new URL(src, document.baseURI);
    } catch (_) {
      throw new TypeError("EmbedGate.mount: src must be a URL");
    }
    if (!(url.protocol === "https:" || (url.protocol === "http:" && isLoopback(url.hostname)))) {
      throw new TypeError("EmbedGate.mount: src must be an https URL");
    }
    // The gateway's own rule (gateway.CheckPrefix): segments of letters,
    // digits and - . _ ~, none "." or "..", so that no prefix ("//evil.test",
    // "/\\evil.test") resolves to another host.
    if (typeof prefix !== "string" || !/^(\/(?!\.\.?(?:\/|$))[A-Za-z0-9._~-]+)+$/.test(prefix)) {
      throw new TypeError('EmbedGate.mount: prefix must be a path such as "/.embed"');
    }
    const page = (name) => {
      const u = new URL(prefix + "/" + name, url.origin);
      u.searchParams.set("tenant", tenant);
      return u;
    };
    const start = page("start");
    start.searchParams.set("next", url.pathname + url.search + url.hash);
    return { origin: url.origin, start: start.href, signout: page("signout").href };
  }

  // mount is one long closure on purpose: its handlers (messages, token
  // fetches, sign-out, destroy) share one mount's state, and each is short;
  // split into free functions they would pass that state around instead.
  function mount(options) {
    const { target, src, tenant, getToken, autoResize = true, title, init, className, prefix = PREFIX } = options || {};
    const container = resolveTarget(target);
    if (typeof tenant !== "string" || tenant === "") throw new TypeError("EmbedGate.mount: tenant is required");
    if (typeof getToken !== "function") throw new TypeError("EmbedGate.mount: getToken must be a function");
    // Every message to the frame names this exact origin as its target.
    const { origin, start, signout } = frameURLs(src, tenant, prefix);

    const doc = container.ownerDocument || document;
    addDefaultStyles(doc);
    const iframe = doc.createElement("iframe");
    iframe.setAttribute("allow", "storage-access");
    iframe.title = typeof title === "string" && title ? title : "Embedded app";
    if (typeof className === "string" && className) iframe.className = className;
    // data-embedgate is the frame's state, for host CSS and tests:
    // loading, signed-in, auth-required, signing-out, signed-out, error;
    // data-embedgate-reason holds the reason that came with it.
    const setState = (state, reason) => {
      iframe.setAttribute("data-embedgate", state);
      if (reason) iframe.setAttribute("data-embedgate-reason", reason);
      else iframe.removeAttribute("data-embedgate-reason");
    };
    setState("loading");
    iframe.src = start;

    const listeners = new Map();
    const seen = new Set(); // ids of messages the frame re-sends until answered
    let destroyed = false;
    let signOutAsked = false; // from then on, getToken is never called again
    let signedOut = false; // the frame confirmed it
    let errored = false;
    let attempts = 0;
    let fetching = false;
    let awaitingAuth = false; // a token went out; no sign-in confirmed since
    let lastAuth = "";
    let lastReason = "";
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
    const navigateFrame = (href) => {
      // replace(): no history entry that Back would return to signed in.
      try {
        iframe.contentWindow.location.replace(href);
      } catch (_) {
        iframe.src = href;
      }
    };

    // fail reports that the embed cannot go on without the host: once.
    const fail = (reason, tellFrame) => {
      if (errored || destroyed) return;
      errored = true;
      awaitingAuth = false;
      setState("error", reason);
      if (tellFrame) send({ type: "host:error", reason });
      emit("embed:error", { type: "embed:error", reason });
      if (pendingSignOut) settleSignOut(new Error("embedgate: sign-out failed: " + reason));
    };

    const deliverToken = async () => {
      if (fetching || destroyed || signOutAsked || errored) return;
      if (attempts >= MAX_TOKEN_ATTEMPTS) {
        console.error("embedgate: " + attempts + " tokens in a row were refused; not asking getToken again");
        fail(lastReason || "exchange_failed", true);
        return;
      }
      attempts++;
      fetching = true;
      let token;
      try {
        token = await getToken();
        if (typeof token !== "string" || token === "") throw new TypeError("getToken must resolve to a token string");
      } catch (e) {
        console.error("embedgate: getToken failed", e);
        token = "";
      } finally {
        fetching = false;
      }
      // A sign-out that began meanwhile wins: the token is never sent.
      if (destroyed || signOutAsked || errored) return;
      if (!token) {
        fail("get_token_failed", true);
        return;
      }
      awaitingAuth = true;
      send({ type: "host:token", token });
    };

    const authenticated = (d) => {
      attempts = 0;
      awaitingAuth = false;
      lastAuth = d.sub + "|" + d.expires_at;
      setState("signed-in");
      emit("embed:authenticated", d);
    };

    const settleSignOut = (err) => {
      const p = pendingSignOut;
      if (!p) return;
      pendingSignOut = null;
      clearTimeout(p.timeout);
      if (err) p.reject(err);
      else p.resolve();
    };

    const handlers = {
      "embed:ready"(d) {
        if (init && typeof init === "object") {
          send({ type: "host:init", locale: init.locale, theme: init.theme });
        }
        // The app loaded signed in: that settles a sign-in whose
        // embed:authenticated was lost on the way.
        if (d.page === "app" && awaitingAuth && !signOutAsked && typeof d.sub === "string") {
          authenticated({ type: "embed:authenticated", sub: d.sub, expires_at: d.expires_at });
        }
        emit("embed:ready", d);
        if (d.page === "start") deliverToken();
      },
      "embed:authenticated"(d) {
        if (signOutAsked) return; // too late: the user is signing out
        if (!awaitingAuth && d.sub + "|" + d.expires_at === lastAuth) return; // settled already
        authenticated(d);
      },
      "embed:authRequired"(d) {
        if (d.reason === SIGNED_OUT) {
          if (signedOut && !pendingSignOut) return; // told once
          signedOut = signOutAsked = true;
          awaitingAuth = false;
          setState("signed-out", SIGNED_OUT);
          emit("embed:authRequired", d);
          settleSignOut();
          return;
        }
        if (pendingSignOut) return; // the document on its way out
        lastReason = typeof d.reason === "string" ? d.reason : "";
        if (!signOutAsked && !errored) setState("auth-required", lastReason);
        emit("embed:authRequired", d);
        deliverToken();
      },
      "embed:error"(d) {
        fail(typeof d.reason === "string" && d.reason ? d.reason : "unknown", false);
      },
      "embed:resize"(d) {
        if (autoResize && typeof d.height === "number" && isFinite(d.height) && d.height >= 0) {
          iframe.style.height = Math.min(Math.ceil(d.height), MAX_HEIGHT) + "px";
        }
        emit("embed:resize", d);
      },
    };

    const onMessage = (ev) => {
      if (destroyed || ev.origin !== origin || ev.source !== iframe.contentWindow) return;
      const d = ev.data;
      if (!d || typeof d !== "object" || typeof d.type !== "string" || !d.type.startsWith("embed:")) return;
      if (typeof d.id === "string") {
        if (seen.has(d.id)) return;
        seen.add(d.id);
        if (seen.size > 100) seen.delete(seen.values().next().value);
      }
      if (Object.prototype.hasOwnProperty.call(handlers, d.type)) handlers[d.type](d);
      else emit(d.type, d);
    };
    (doc.defaultView || window).addEventListener("message", onMessage);
    container.appendChild(iframe);

    return {
      iframe,
      get state() {
        return iframe.getAttribute("data-embedgate");
      },
      on(type, fn) {
        if (typeof fn !== "function") throw new TypeError("EmbedGate: on(type, fn) needs a function");
        if (!listeners.has(type)) listeners.set(type, new Set());
        listeners.get(type).add(fn);
        return () => {
          const set = listeners.get(type);
          if (set) set.delete(fn);
        };
      },
      // signOut sends the frame, whatever it shows, to the gateway's
      // sign-out page: it ends the session first-party, then posts
      // embed:authRequired {reason: "signed_out"}, which settles this.
      signOut() {
        if (destroyed || (signedOut && !pendingSignOut)) return Promise.resolve();
        if (pendingSignOut) return pendingSignOut.promise;
        signOutAsked = true;
        awaitingAuth = false;
        const p = {};
        p.promise = new Promise((resolve, reject) => {
          p.resolve = resolve;
          p.reject = reject;
        });
        p.timeout = setTimeout(() => {
          if (pendingSignOut === p) settleSignOut(new Error("embedgate: sign-out did not complete"));
        }, SIGNOUT_TIMEOUT_MS);
        pendingSignOut = p;
        setState("signing-out");
        navigateFrame(signout);
        return p.promise;
      },
      destroy() {
        if (destroyed) return;
        destroyed = true;
        (doc.defaultView || window).removeEventListener("message", onMessage);
        listeners.clear();
        settleSignOut(); // a pending signOut() resolves: the frame is gone
        iframe.remove();
      },
    };
  }

  const api = Object.freeze({ mount, events: EVENTS });
  // A classic <script>: `this` is the window. Imported as a module, `this`
  // is undefined: the package's core.js takes the API from a symbol, so
  // importing defines no global and reads nothing of a browser's.
  if (global) global.EmbedGate = api;
  else globalThis[Symbol.for("embedgate.sdk")] = api;
})(this);
