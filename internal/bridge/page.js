(() => {
  "use strict";
  // The start page and the gate page share this script; the gateway serves
  // it inline and allows it by its hash. Its settings come from the JSON data
  // block above it: {page, tenant, next, origins, bound, reason, prefix}.
  const cfg = JSON.parse(document.getElementById("embedgate-config").textContent);
  const parent = window.parent;
  const allowed = new Set(cfg.origins || []);
  const $ = (id) => document.getElementById(id);
  const show = (id) => {
    for (const el of document.querySelectorAll("[data-state]")) el.hidden = el.id !== id;
  };

  if (parent === window) {
    show("not-framed");
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

  const endpoint = (name) => cfg.prefix + "/" + name;
  const sessionVisible = async () => {
    try {
      const res = await fetch(endpoint("session"), { credentials: "same-origin", cache: "no-store" });
      return res.ok ? await res.json() : null;
    } catch (_) {
      return null;
    }
  };
  const proceed = (info) => {
    post({ type: "embed:authenticated", sub: info.sub, expires_at: info.expires_at });
    window.location.replace(cfg.next);
  };

  let busy = false;
  const exchange = async (token, origin) => {
    busy = true;
    show("working");
    let reason = "";
    try {
      const res = await fetch(endpoint("exchange"), {
        method: "POST",
        credentials: "same-origin",
        cache: "no-store",
        redirect: "error",
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
    busy = false;
    if (reason) {
      show(cfg.page === "gate" ? "gate" : "failed");
      post({ type: "embed:authRequired", reason });
      return;
    }
    const info = await sessionVisible();
    if (info) {
      proceed(info);
      return;
    }
    // The cookie was not stored or is not visible here (Safari, or
    // third-party cookies blocked): ask for storage access on a click.
    show(typeof document.requestStorageAccess === "function" ? "storage" : "storage-unsupported");
  };

  const askStorageAccess = async () => {
    try {
      await document.requestStorageAccess();
    } catch (_) {
      show("storage-denied");
      return;
    }
    const info = await sessionVisible();
    if (info) {
      proceed(info);
      return;
    }
    // Access granted but the cookie was dropped when it was set: a new
    // token, exchanged now that storage access is active, sets it.
    show("working");
    post({ type: "embed:authRequired", reason: "storage_access" });
  };
  if (typeof document.requestStorageAccess === "function") {
    $("storage-button").addEventListener("click", askStorageAccess);
  }

  const signOut = async () => {
    try {
      await fetch(endpoint("signout"), { method: "POST", credentials: "same-origin", cache: "no-store" });
    } catch (_) {}
    window.location.replace(cfg.page === "gate" ? cfg.next : window.location.href);
  };

  window.addEventListener("message", (ev) => {
    if (ev.source !== parent || !allowed.has(ev.origin)) return;
    const d = ev.data;
    if (!d || typeof d !== "object") return;
    if (d.type === "host:token" && typeof d.token === "string" && d.token && !busy) {
      exchange(d.token, ev.origin);
    } else if (d.type === "host:signOut") {
      signOut();
    }
  });

  if (cfg.page === "gate") {
    post({ type: "embed:authRequired", reason: cfg.reason || "session_missing" });
  } else {
    post({ type: "embed:ready", page: "start" });
  }
})();
