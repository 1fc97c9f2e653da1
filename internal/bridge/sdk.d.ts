// Types for embedgate's sdk.js (served at <prefix>/sdk.js) and bridge.js.

export interface HostInit {
  locale?: string;
  theme?: string;
}

export interface MountOptions {
  /** The element the iframe is appended to, or a selector for it. */
  target: Element | string;
  /** The gateway base URL plus the path the app starts at, e.g. "https://portal.example.com/deals". */
  src: string;
  /** The tenant id the token is minted for. */
  tenant: string;
  /** Returns a fresh one-time token from your backend; called again whenever the frame needs one. */
  getToken: () => string | Promise<string>;
  /** Follow the app's height (embed:resize). Default: true. */
  autoResize?: boolean;
  /** The iframe's title, for assistive technology. */
  title?: string;
  /** Sent to the app as host:init on each embed:ready. */
  init?: HostInit;
}

export interface ReadyEvent {
  type: "embed:ready";
  /** "start": the sign-in page; "app": a page of the app with bridge.js. */
  page: "start" | "app";
  path?: string;
}
export interface ResizeEvent {
  type: "embed:resize";
  height: number;
}
export interface AuthRequiredEvent {
  type: "embed:authRequired";
  /** The gateway's reason, e.g. "replayed", "session_expired", "session_missing", "storage_access". */
  reason: string;
}
export interface AuthenticatedEvent {
  type: "embed:authenticated";
  sub: string;
  expires_at: string;
}
export interface NavigateEvent {
  type: "embed:navigate";
  path: string;
}

export interface EmbedEventMap {
  "embed:ready": ReadyEvent;
  "embed:resize": ResizeEvent;
  "embed:authRequired": AuthRequiredEvent;
  "embed:authenticated": AuthenticatedEvent;
  "embed:navigate": NavigateEvent;
}

export interface Embed {
  readonly iframe: HTMLIFrameElement;
  /** Listens to an event from the frame; returns the function that stops listening. */
  on<K extends keyof EmbedEventMap>(type: K, fn: (event: EmbedEventMap[K]) => void): () => void;
  /** Ends the session through the frame; the frame then shows the sign-in-required page. */
  signOut(): Promise<void>;
  /** Removes the iframe and every listener. */
  destroy(): void;
}

export interface EmbedGateSDK {
  mount(options: MountOptions): Embed;
}

/** Inside the embedded app, with bridge.js loaded. */
export interface EmbedBridgeAPI {
  /** The host's host:init data, or null before it arrives. */
  readonly init: Readonly<HostInit> | null;
  /** Calls fn with the init data now (if any) and on every host:init; returns the unsubscribe function. */
  onInit(fn: (init: Readonly<HostInit>) => void): () => void;
  /** Ends the session; the page then reloads into the sign-in-required page. */
  signOut(): Promise<void>;
}

declare global {
  interface Window {
    EmbedGate: EmbedGateSDK;
    EmbedBridge?: EmbedBridgeAPI;
  }
  interface WindowEventMap {
    "embedgate:init": CustomEvent<Readonly<HostInit>>;
  }
}
