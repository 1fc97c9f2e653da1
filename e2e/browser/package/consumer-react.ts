// Type-checked with consumer.ts by e2e/npm_package_test.go (tsc --noEmit
// --strict): a React page using @embedgate/sdk/react, its types checked
// against @types/react (a dev dependency of e2e/browser, linked into the
// scratch project).
import { StrictMode, createElement, useRef } from "react";
import type { ReactElement } from "react";
import EmbedGateDefault, { EmbedGate } from "@embedgate/sdk/react";
import type { EmbedGateProps } from "@embedgate/sdk/react";
import type { Embed, EmbedEvent } from "@embedgate/sdk";

const getToken = async (): Promise<string> => (await (await fetch("/embed-token", { method: "POST" })).json()).token as string;

function onEvent(e: EmbedEvent): void {
  // The union narrows by type.
  if (e.type === "embed:error") console.log(e.reason.toUpperCase());
  else if (e.type === "embed:resize") console.log(e.height.toFixed(0));
  else if (e.type === "embed:authenticated") console.log(e.sub, e.expires_at);
}

export function Page(): ReactElement {
  const embed = useRef<Embed | null>(null);
  const props: EmbedGateProps = {
    src: "https://portal.example.com/deals",
    tenant: "acme",
    getToken,
    onEvent,
    init: { locale: "de-CH", theme: "dark" },
    autoResize: true,
    title: "Deals",
    prefix: "/.embed",
    className: "embed",
    containerClassName: "embed-host",
    embedRef: embed,
  };
  const signOut = (): Promise<void> | undefined => embed.current?.signOut();
  console.log(signOut);
  return createElement(StrictMode, null,
    createElement(EmbedGate, props),
    // The default export is the same component; embedRef also takes a callback.
    createElement(EmbedGateDefault, {
      src: "https://portal.example.com/reports", tenant: "acme", getToken: () => "token",
      embedRef: (e: Embed | null) => console.log(e?.state),
    }));
}

// @ts-expect-error: getToken is required
createElement(EmbedGate, { src: "https://portal.example.com/", tenant: "acme" });
// @ts-expect-error: getToken returns a token string
createElement(EmbedGate, { src: "https://portal.example.com/", tenant: "acme", getToken: () => 42 });
// @ts-expect-error: autoResize is a boolean
createElement(EmbedGate, { src: "https://portal.example.com/", tenant: "acme", getToken, autoResize: "yes" });
