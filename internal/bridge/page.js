(() => {
  "use strict";
  // The start, gate and sign-out pages share this script; the gateway
  // serves it inline and allows it by its hash. Its settings come from the
  // JSON data block above it: {page, tenant, next, origins, bound, reason,
  // error, prefix}. The visible state is the one [data-state] element not
  // hidden, named again in <html data-embedgate-state>.
  const cfg = JSON.parse(document.getElementById("embedgate-config").textContent);
  const parent = window.parent;
  const allowed = new Set(cfg.origins || []);
  const $ = (id) => document.getElementById(id);
  const endpoint = (name) => cfg.prefix + "/" + name;
  // A gate page may answer a token link that failed: its URL holds the
  // token, unspent. It takes the URL it stands for (cfg.next: the same
  // without the token) at once, so the token leaves the address bar and
  // the history entry.
  if (cfg.page === "gate") {
    try {
      history.replaceState(history.state, "", cfg.next);
    } catch (_) {}
  }
  const reveal = (id) => {
    for (const el of document.querySelectorAll("[data-state]")) el.hidden = el.id !== id;
    document.documentElement.setAttribute("data-embedgate-state", id);
  };

  if (parent === window) {
    reveal(cfg.page === "gate" ? "not-framed" : $("not-framed-page") ? "not-framed-page" : "not-framed");
    return;
  }

  // The origin messages go to: the one bound into the session, else the
  // parent origin the browser reports when it is allowlisted, else each
  // allowlisted origin (the browser delivers to the one that matches and
  // drops the rest), never the wildcard.
  let hostOrigin = cfg.bound && allowed.has(cfg.bound) ? cfg.bound : "";
  const observedParent = () => {
    try {
      const ao = window.location.ancestorOrigins;
      if (ao && ao.length) return ao[0];
    } catch (_) {}
    try {
      if (document.referrer) return new URL(document.referrer).origin;
    } catch (_) {}
    return "";
  };
  if (!hostOrigin && allowed.has(observedParent())) hostOrigin = observedParent();
  const post = (msg) => {
    for (const o of hostOrigin ? [hostOrigin] : allowed) {
      try {
        parent.postMessage(msg, o);
      } catch (_) {}
    }
  };

  // A message the host must act on is posted again, with the same id (the
  // SDK handles an id once), until the host answers: one lost postMessage
  // must not leave the frame waiting. The normal path answers before the
  // first repeat.
  const docID =
    typeof crypto === "object" && typeof crypto.randomUUID === "function" ? crypto.randomUUID() : String(Math.random()).slice(2);
  let seq = 0;
  let repeat = 0;
  const stopRepeating = () => clearTimeout(repeat);
  const postUntilAnswered = (msg) => {
    stopRepeating();
    const m = Object.assign({ id: docID + ":" + ++seq }, msg);
    post(m);
    let delay = 1000;
    const again = () => {
      post(m);
      delay *= 2;
      if (delay <= 8000) repeat = setTimeout(again, delay);
    };
    repeat = setTimeout(again, delay);
  };

  // {{RESIZE_JS}}
  // The page's height is sent once it shows more than "Signing in…" (which
  // the app's own page replaces at once).
  let following = false;
  const measure = heightReporter(post);
  const followHeight = () => {
    if (following) return;
    following = true;
    if (typeof ResizeObserver === "function") new ResizeObserver(measure).observe(document.documentElement);
  };

  const show = (id) => {
    reveal(id);
    if (cfg.page !== "start" || id !== "working") {
      followHeight();
      measure();
    }
  };

  // call fetches one of the gateway's endpoints with this frame's cookie,
  // never from a cache; postTo POSTs to one and follows no redirect.
  const call = (name, init) => fetch(endpoint(name), { credentials: "same-origin", cache: "no-store", ...init });
  const postTo = (name, init) => call(name, { method: "POST", redirect: "error", ...init });

  const sessionVisible = async () => {
    try {
      const res = await call("session");
      return res.ok ? await res.json() : null;
    } catch (_) {
      return null;
    }
  };
  const hasAccess = async () => {
    try {
      return typeof document.hasStorageAccess === "function" && (await document.hasStorageAccess());
    } catch (_) {
      return false;
    }
  };
  // activateGrant puts a storage-access grant the user gave before to use,
  // without a click; it never asks for a new one.
  const activateGrant = async () => {
    try {
      if (typeof document.requestStorageAccess !== "function" || !navigator.permissions) return false;
      if (await document.hasStorageAccess()) return true;
      const p = await navigator.permissions.query({ name: "storage-access" });
      if (p.state !== "granted") return false;
      await document.requestStorageAccess();
      return true;
    } catch (_) {
      return false;
    }
  };

  // stop ends the page in a final state and tells the host embed:error.
  let stopped = false;
  const stop = (id, reason) => {
    stopped = true;
    show(id);
    postUntilAnswered({ type: "embed:error", reason });
  };
  const proceed = (info) => {
    post({ type: "embed:authenticated", sub: info.sub, expires_at: info.expires_at });
    window.location.replace(cfg.next);
  };

  let busy = false;
  let granted = false; // storage access is active: a cookie that still does not stick is blocked
  const exchange = async (token, origin) => {
    busy = true;
    show("working");
    if (await activateGrant()) granted = true;
    let reason = "";
    try {
      const res = await postTo("exchange", {
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token, tenant: cfg.tenant, parent_origin: origin }),
      });
      if (res.status !== 204) {
        const body = await res.json().catch(() => ({}));
        reason = body.error_description || "exchange_failed";
      }
    } catch (_) {
      reason = "network_error";
    }
    if (reason) {
      busy = false;
      show("failed");
      postUntilAnswered({ type: "embed:authRequired", reason });
      return;
    }
    const info = await sessionVisible();
    busy = false;
    if (info) {
      proceed(info);
      return;
    }
    // The cookie was not stored or is not visible here (Safari, or
    // third-party cookies blocked). With access already active, or no
    // Storage Access API, nothing the user clicks here can help.
    if (granted || (await hasAccess()) || typeof document.requestStorageAccess !== "function") {
      stop("cookies-blocked", "cookies_blocked");
      return;
    }
    show("storage");
  };

  const askStorageAccess = async () => {
    try {
      await document.requestStorageAccess();
    } catch (_) {
      stop("storage-denied", "storage_access_denied");
      return;
    }
    granted = true;
    const info = await sessionVisible();
    if (info) {
      proceed(info);
      return;
    }
    // Access granted but the cookie was dropped when it was set: one new
    // token, exchanged now that storage access is active, sets it.
    show("working");
    postUntilAnswered({ type: "embed:authRequired", reason: "storage_access" });
  };
  if ($("storage-button")) $("storage-button").addEventListener("click", askStorageAccess);

  // The sign-out names this page's tenant, both the page and its POST: a
  // session of another tenant (one cookie on a shared host) is not this
  // page's to end.
  const signoutTarget = "signout?tenant=" + encodeURIComponent(cfg.tenant || "");
  const toSignOutPage = () => {
    window.location.replace(endpoint(signoutTarget));
  };

  // The sign-out page: end the session first-party (the cookie is this
  // frame's), then say so and tell the host.
  const signOutHere = async () => {
    show("signing-out");
    await activateGrant();
    let reason = "";
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        const res = await postTo(signoutTarget);
        if (res.status === 204) {
          reason = "";
          break;
        }
        const body = await res.json().catch(() => ({}));
        reason = body.error_description || "signout_failed";
        if (res.status !== 503) break;
      } catch (_) {
        reason = "network_error";
      }
      if (attempt < 3) await new Promise((done) => setTimeout(done, 1000));
    }
    if (reason) {
      $("signout-reason").textContent = reason;
      stop("signout-failed", reason);
      return;
    }
    show("gate");
    postUntilAnswered({ type: "embed:authRequired", reason: "signed_out" });
  };

  window.addEventListener("message", (ev) => {
    if (ev.source !== parent || !allowed.has(ev.origin)) return;
    const d = ev.data;
    if (!d || typeof d !== "object" || cfg.page === "signout") return;
    if (d.type === "host:token" && typeof d.token === "string" && d.token && !busy && !stopped) {
      stopRepeating();
      exchange(d.token, ev.origin);
    } else if (d.type === "host:error" && !stopped) {
      // The host has stopped sending tokens.
      stopped = true;
      stopRepeating();
      $("stopped-reason").textContent = typeof d.reason === "string" ? d.reason.slice(0, 100) : "";
      show("stopped");
    } else if (d.type === "host:signOut") {
      stopRepeating();
      toSignOutPage();
    }
  });

  if (cfg.page === "signout") {
    signOutHere();
  } else if (cfg.page === "gate") {
    show("gate");
    postUntilAnswered({ type: "embed:authRequired", reason: cfg.reason || "session_missing" });
  } else if (cfg.error) {
    $("config-reason").textContent = cfg.reason || cfg.error;
    stop("config-error", cfg.error);
  } else {
    show("working");
    postUntilAnswered({ type: "embed:ready", page: "start" });
  }
})();
