// @embedgate/sdk/element: the <embed-gate> custom element.
//
//   <embed-gate src="https://portal.example.com/deals" tenant="acme" token-url="/embed-token"></embed-gate>
//
// token-url is your backend's endpoint, POSTed with credentials, answering
// {"token": "..."}; element.getToken = fn overrides it. The SDK's events
// are dispatched on the element as CustomEvents of the same names (the
// message in event.detail). Defined on import where the page has
// customElements; in Node, importing touches nothing of a browser's.
import { mount, events } from "./core.js";

export const TAG = "embed-gate";
// Attributes that, when they change, mount the app anew.
const MOUNT_ATTRIBUTES = ["src", "tenant", "prefix", "frame-title", "auto-resize"];

function tokenFromURL(url) {
  return async () => {
    const res = await fetch(url, {
      method: "POST",
      credentials: "include",
      cache: "no-store",
      headers: { Accept: "application/json" },
    });
    if (!res.ok) throw new Error("embed-gate: token-url answered " + res.status);
    const body = await res.json();
    return body && body.token;
  };
}

// makeClass builds the element class; only called where HTMLElement exists.
function makeClass(Base) {
  return class EmbedGateElement extends Base {
    static get observedAttributes() {
      return MOUNT_ATTRIBUTES.concat("token-url");
    }

    #embed = null;
    #getToken = undefined;
    #scheduled = false;

    /** The mounted embed (see sdk.d.ts), or null while none is mounted. */
    get embed() {
      return this.#embed;
    }
    get getToken() {
      return this.#getToken;
    }
    set getToken(fn) {
      this.#getToken = typeof fn === "function" ? fn : undefined;
    }
    /** Ends the session (see Embed.signOut); resolves at once when nothing is mounted. */
    signOut() {
      return this.#embed ? this.#embed.signOut() : Promise.resolve();
    }

    connectedCallback() {
      this.#schedule();
    }
    disconnectedCallback() {
      this.#unmount();
    }
    attributeChangedCallback(name, before, after) {
      if (before !== after && MOUNT_ATTRIBUTES.includes(name) && this.isConnected) {
        this.#unmount();
        this.#schedule();
      }
    }

    // Mounting waits a microtask: attributes and getToken set right after
    // the element is inserted still count.
    #schedule() {
      if (this.#scheduled) return;
      this.#scheduled = true;
      queueMicrotask(() => {
        this.#scheduled = false;
        if (this.isConnected && !this.#embed) this.#mount();
      });
    }

    #mount() {
      const src = this.getAttribute("src");
      const tenant = this.getAttribute("tenant");
      if (!src || !tenant) return; // mounted when both are set
      const options = {
        target: this,
        src,
        tenant,
        getToken: () => {
          if (this.#getToken) return this.#getToken();
          const url = this.getAttribute("token-url");
          if (!url) throw new Error('embed-gate: set token-url="..." or element.getToken');
          return tokenFromURL(url)();
        },
        autoResize: this.getAttribute("auto-resize") !== "false",
      };
      const title = this.getAttribute("frame-title");
      if (title) options.title = title;
      const prefix = this.getAttribute("prefix");
      if (prefix) options.prefix = prefix;
      let embed;
      try {
        embed = mount(options);
      } catch (e) {
        console.error("embed-gate:", e);
        return;
      }
      this.#embed = embed;
      for (const type of events) {
        embed.on(type, (detail) => {
          this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
        });
      }
    }

    #unmount() {
      if (this.#embed) {
        this.#embed.destroy();
        this.#embed = null;
      }
    }
  };
}

/**
 * Defines the element under name (default "embed-gate") and returns its
 * class, or the class already defined under that name; undefined where the
 * page has no custom elements (Node).
 */
export function defineEmbedGate(name = TAG) {
  // `in` reads no property: nothing of a browser's is touched in Node.
  if (!("customElements" in globalThis)) return undefined;
  const registry = globalThis.customElements;
  const existing = registry.get(name);
  if (existing) return existing;
  const cls = makeClass(globalThis.HTMLElement);
  registry.define(name, cls);
  return cls;
}

defineEmbedGate();
