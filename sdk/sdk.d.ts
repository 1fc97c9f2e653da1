// Types for embedgate's sdk.js: the npm package @embedgate/sdk (its main
// entry) and the script the gateway serves at <prefix>/sdk.js (the
// EmbedGate global). Also the types of bridge.js inside the app.

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
  /** The iframe's title, for assistive technology. Default: "Embedded app". */
  title?: string;
  /** Sent to the app as host:init on each embed:ready. */
  init?: HostInit;
  /** Set as the iframe's class attribute. Default: none. */
  className?: string;
  /** The gateway's path prefix. Default: the served script's prefix; from npm, "/.embed". */
  prefix?: string;
}

export interface ReadyEvent {
  type: "embed:ready";
  /** "start": the sign-in page; "app": a page of the app with bridge.js. */
  page: "start" | "app";
  path?: string;
  /** On an app page with a session: who is signed in, and until when. */
  sub?: string;
  expires_at?: string;
}
export interface ResizeEvent {
  type: "embed:resize";
  height: number;
}
export interface AuthRequiredEvent {
  type: "embed:authRequired";
  /**
   * The gateway's reason ("replayed", "session_expired", "session_missing", ...),
   * "storage_access" (access granted, a new token is needed), or "signed_out"
   * (the session has ended: once per sign-out, and getToken is not called again).
   */
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
/**
 * The embed cannot go on without the host's help; sent once per mount, after
 * which getToken is not called again and the frame shows a final state.
 */
export interface EmbedErrorEvent {
  type: "embed:error";
  /**
   * "wrong_tenant" (mount's tenant is unknown or not the gateway host's),
   * "storage_access_denied" (the user refused storage access),
   * "cookies_blocked" (the browser drops the cookie even with access),
   * "get_token_failed" (getToken threw or gave no token string), or the
   * gateway's last reason once three tokens in a row were refused
   * ("malformed", "replayed", "store_unavailable", ...); during a sign-out,
   * the reason it failed ("store_unavailable", "network_error").
   */
  reason: string;
}

export interface EmbedEventMap {
  "embed:ready": ReadyEvent;
  "embed:resize": ResizeEvent;
  "embed:authRequired": AuthRequiredEvent;
  "embed:authenticated": AuthenticatedEvent;
  "embed:navigate": NavigateEvent;
  "embed:error": EmbedErrorEvent;
}

export type EmbedEventType = keyof EmbedEventMap;
export type EmbedEvent = EmbedEventMap[EmbedEventType];

/** The iframe's data-embedgate attribute. */
export type EmbedState = "loading" | "signed-in" | "auth-required" | "signing-out" | "signed-out" | "error";

export interface Embed {
  readonly iframe: HTMLIFrameElement;
  /** The frame's state, also on the iframe as data-embedgate. */
  readonly state: EmbedState;
  /** Listens to an event from the frame; returns the function that stops listening. */
  on<K extends EmbedEventType>(type: K, fn: (event: EmbedEventMap[K]) => void): () => void;
  /**
   * Ends the session, whatever the frame shows; resolves once the gateway has
   * ended it and the frame shows the signed-out page. getToken is not called again.
   */
  signOut(): Promise<void>;
  /** Removes the iframe and every listener. */
  destroy(): void;
}

export interface EmbedGateSDK {
  mount(options: MountOptions): Embed;
  /** Every event type the SDK delivers. */
  readonly events: readonly EmbedEventType[];
}

/** Mounts the app: appends the iframe to options.target. */
export declare function mount(options: MountOptions): Embed;
/** Every event type the SDK delivers. */
export declare const events: readonly EmbedEventType[];

/** Inside the embedded app, with bridge.js loaded. */
export interface EmbedBridgeAPI {
  /** The host's host:init data, or null before it arrives. */
  readonly init: Readonly<HostInit> | null;
  /** Calls fn with the init data now (if any) and on every host:init; returns the unsubscribe function. */
  onInit(fn: (init: Readonly<HostInit>) => void): () => void;
  /** Ends the session; the frame then shows the signed-out page and the host gets embed:authRequired "signed_out". */
  signOut(): Promise<void>;
}

declare global {
  interface Window {
    /** Defined by the script tag (<prefix>/sdk.js), not by importing the package. */
    EmbedGate: EmbedGateSDK;
    EmbedBridge?: EmbedBridgeAPI;
  }
  interface WindowEventMap {
    "embedgate:init": CustomEvent<Readonly<HostInit>>;
  }
}
