// Types for @embedgate/sdk/react.
import type { ReactElement, Ref } from "react";

import type { Embed, EmbedEvent, HostInit } from "./sdk.js";

export interface EmbedGateProps {
  /** The gateway base URL plus the path the app starts at. */
  src: string;
  /** The tenant id the token is minted for. */
  tenant: string;
  /** Returns a fresh one-time token from your backend. Changing it does not reload the frame. */
  getToken: () => string | Promise<string>;
  /** Every SDK event (embed:ready, embed:authenticated, embed:authRequired, embed:resize, embed:navigate, embed:error). */
  onEvent?: (event: EmbedEvent) => void;
  /** Sent to the app as host:init on each embed:ready; the current value is read each time. */
  init?: HostInit;
  /** Follow the app's height. Default: true. */
  autoResize?: boolean;
  /** The iframe's title. Default: "Embedded app". */
  title?: string;
  /** The gateway's path prefix. Default: "/.embed". */
  prefix?: string;
  /** The iframe's class attribute. Default: none. */
  className?: string;
  /** The class of the <div> the iframe is mounted in. Default: none. */
  containerClassName?: string;
  /** Receives the mounted Embed (for signOut()), and null when it is destroyed. */
  embedRef?: Ref<Embed | null>;
}

export declare function EmbedGate(props: EmbedGateProps): ReactElement;
export default EmbedGate;
