// @embedgate/sdk: import { mount } from "@embedgate/sdk". In a browser,
// importing it also defines the <embed-gate> element (./element); in Node
// it touches nothing of a browser's, so server-side rendering may import it.
export { mount, events } from "./core.js";
import "./element.js";
