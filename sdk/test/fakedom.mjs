// A page just big enough for sdk.js: elements with attributes, a head, the
// message listeners of a window, and a frame window that records what the
// SDK posts to it and where it navigates. No browser, no jsdom.

export const GATEWAY = "https://portal.gate.test";
export const HOST = "https://app.acme.test";

export class FakeElement {
  constructor(tag, doc) {
    this.tagName = tag.toUpperCase();
    this.ownerDocument = doc;
    this.attributes = new Map();
    this.children = [];
    this.parentNode = null;
    this.style = {};
    this.className = "";
    this.textContent = "";
  }
  setAttribute(k, v) {
    this.attributes.set(k, String(v));
  }
  getAttribute(k) {
    return this.attributes.has(k) ? this.attributes.get(k) : null;
  }
  removeAttribute(k) {
    this.attributes.delete(k);
  }
  appendChild(c) {
    c.parentNode = this;
    this.children.push(c);
    this.ownerDocument.inserted(c);
    return c;
  }
  prepend(c) {
    c.parentNode = this;
    this.children.unshift(c);
    this.ownerDocument.inserted(c);
  }
  remove() {
    if (!this.parentNode) return;
    this.parentNode.children = this.parentNode.children.filter((x) => x !== this);
    this.parentNode = null;
    if (this.tagName === "IFRAME") this.contentWindow = null;
  }
}

// fakePage builds the page; timers are fake when a test wants to fire them.
export function fakePage({ fakeTimers = false } = {}) {
  const listeners = new Set();
  const timers = new Map();
  let nextTimer = 1;
  const frame = {
    posted: [],
    navigations: [],
    postMessage(msg, target) {
      this.posted.push({ msg, target });
    },
  };
  frame.location = {
    replace(url) {
      frame.navigations.push(url);
    },
  };
  const document = {
    baseURI: HOST + "/page",
    styles: [],
    createElement(tag) {
      return new FakeElement(tag, document);
    },
    querySelector(sel) {
      return sel === "#app" ? app : null;
    },
    inserted(el) {
      if (el.tagName === "IFRAME") el.contentWindow = frame;
      if (el.tagName === "STYLE") {
        el.sheet = {};
        document.styles.push(el);
      }
    },
  };
  document.head = new FakeElement("head", document);
  const app = new FakeElement("div", document);
  const window = {
    document,
    addEventListener(type, fn) {
      if (type === "message") listeners.add(fn);
    },
    removeEventListener(type, fn) {
      if (type === "message") listeners.delete(fn);
    },
  };
  document.defaultView = window;
  const page = {
    window,
    document,
    app,
    frame,
    timers,
    listeners,
    // deliver posts data to the page as if the frame sent it.
    deliver(data, { origin = GATEWAY, source = frame } = {}) {
      for (const fn of Array.from(listeners)) fn({ data, origin, source });
    },
    // sent lists the types of the messages the SDK posted to the frame.
    sent() {
      return frame.posted.map((p) => p.msg.type);
    },
    fire(ms) {
      for (const [id, t] of Array.from(timers)) {
        if (t.ms === ms) {
          timers.delete(id);
          t.fn();
        }
      }
    },
  };
  if (fakeTimers) {
    page.setTimeout = (fn, ms = 0) => {
      const id = nextTimer++;
      timers.set(id, { fn, ms });
      return id;
    };
    page.clearTimeout = (id) => timers.delete(id);
  }
  return page;
}

// tick lets pending promise callbacks run.
export const tick = () => new Promise((resolve) => setImmediate(resolve));
