// Draws the API reference with the vendored Redoc bundle (no inline script: the CSP forbids it).
import { init } from "./redoc-3.0.1.standalone.js";

// Redoc's sidebar credit loads its logo from Redocly's CDN; this page loads nothing from
// elsewhere, so the credit shows a local wordmark instead (React sets `src` both ways).
const CREDIT = "data:image/svg+xml," + encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="16"><text x="0" y="12" ' +
  'font-family="sans-serif" font-size="12" fill="#555">Redocly</text></svg>');
const local = (value) => (String(value).startsWith("https://cdn.redoc.ly/") ? CREDIT : value);
const setAttribute = Element.prototype.setAttribute;
Element.prototype.setAttribute = function (name, value) {
  return setAttribute.call(this, name, this instanceof HTMLImageElement && name === "src" ? local(value) : value);
};
const src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
Object.defineProperty(HTMLImageElement.prototype, "src", {
  ...src,
  set(value) { src.set.call(this, local(value)); },
});

const root = document.getElementById("api-reference");
if (root) {
  // Patterns stay in the document (the tests fuzz with them); the page says the rules in words.
  init(root.dataset.specUrl, { disableTelemetry: true, hideSchemaPattern: true }, root);
}
