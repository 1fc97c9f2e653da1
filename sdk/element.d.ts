// Types for @embedgate/sdk/element: the <embed-gate> custom element.
import type { Embed, EmbedEventMap } from "./sdk.js";

/** The element's tag name: "embed-gate". */
export declare const TAG: "embed-gate";

/**
 * <embed-gate src="..." tenant="..." token-url="/embed-token">: attributes
 * src, tenant, token-url, prefix, frame-title (the iframe's title) and
 * auto-resize ("false" turns it off). Dispatches the SDK's events as
 * CustomEvents of the same names, with the message as detail.
 */
export interface EmbedGateElement extends HTMLElement {
  /** Overrides token-url: returns a fresh one-time token from your backend. */
  getToken: (() => string | Promise<string>) | undefined;
  /** The mounted embed, or null while none is mounted. */
  readonly embed: Embed | null;
  /** Ends the session; resolves at once when nothing is mounted. */
  signOut(): Promise<void>;
  addEventListener: EmbedGateListenerMethod<AddEventListenerOptions>;
  removeEventListener: EmbedGateListenerMethod<EventListenerOptions>;
}

/**
 * addEventListener and removeEventListener, which differ only in their
 * options: the element's events typed by name, any other as on every
 * element.
 */
export interface EmbedGateListenerMethod<Options> {
  <K extends keyof EmbedGateElementEventMap>(
    type: K,
    listener: (this: EmbedGateElement, ev: EmbedGateElementEventMap[K]) => unknown,
    options?: boolean | Options,
  ): void;
  (type: string, listener: EventListenerOrEventListenerObject, options?: boolean | Options): void;
}

export type EmbedGateElementEventMap = HTMLElementEventMap & {
  [K in keyof EmbedEventMap]: CustomEvent<EmbedEventMap[K]>;
};

/**
 * Defines the element under name (default "embed-gate") and returns its
 * class, or the one already defined; undefined where there are no custom
 * elements (Node). Importing this entry, or the package's main entry, in a
 * browser calls it.
 */
export declare function defineEmbedGate(name?: string): (new () => EmbedGateElement) | undefined;

declare global {
  interface HTMLElementTagNameMap {
    "embed-gate": EmbedGateElement;
  }
}
