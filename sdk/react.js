// @embedgate/sdk/react: the React component, without JSX (no build step).
//
//   <EmbedGate src="https://portal.example.com/deals" tenant="acme"
//     getToken={() => fetch("/embed-token", { method: "POST" }).then((r) => r.json()).then((j) => j.token)}
//     onEvent={(e) => console.log(e.type, e)} />
//
// It mounts in an effect and destroys in its cleanup, so StrictMode's
// mount, unmount, mount leaves exactly one iframe, and server rendering
// renders only the empty container. getToken, onEvent and init are read
// when used: changing them does not reload the frame; changing src,
// tenant, prefix, title or autoResize mounts anew.
import { createElement, useEffect, useRef } from "react";

import { mount, events } from "./core.js";

function setRef(ref, value) {
  if (typeof ref === "function") ref(value);
  else if (ref && typeof ref === "object") ref.current = value;
}

export function EmbedGate(props) {
  const { src, tenant, prefix, title, autoResize = true, className, containerClassName, embedRef } = props;
  const container = useRef(null);
  const latest = useRef(props);
  latest.current = props;
  const embed = useRef(null);

  useEffect(() => {
    const options = {
      target: container.current,
      src,
      tenant,
      autoResize,
      getToken: () => latest.current.getToken(),
      // Read on every embed:ready: the current props' values.
      init: {
        get locale() {
          return latest.current.init && latest.current.init.locale;
        },
        get theme() {
          return latest.current.init && latest.current.init.theme;
        },
      },
    };
    if (title) options.title = title;
    if (prefix) options.prefix = prefix;
    if (className) options.className = className;
    const e = mount(options);
    embed.current = e;
    for (const type of events) {
      e.on(type, (event) => {
        const fn = latest.current.onEvent;
        if (typeof fn === "function") fn(event);
      });
    }
    setRef(latest.current.embedRef, e);
    return () => {
      setRef(latest.current.embedRef, null);
      embed.current = null;
      e.destroy();
    };
    // className is applied below without mounting anew.
  }, [src, tenant, prefix, title, autoResize]);

  useEffect(() => {
    if (embed.current) embed.current.iframe.className = className || "";
  }, [className]);

  useEffect(() => {
    if (embed.current) setRef(embedRef, embed.current);
  }, [embedRef]);

  return createElement("div", { ref: container, className: containerClassName, "data-embedgate-host": "" });
}

export default EmbedGate;
