/*! <herald-inbox> — Herald's embeddable end-user inbox. One file, no dependencies, no build step.
 *
 *   <script src="https://herald.example.com/inbox/v1/herald-inbox.js" defer></script>
 *   <herald-inbox api-base="https://herald.example.com" token="…"></herald-inbox>
 *
 * Attributes: api-base (Herald's origin; default: where this script came from), token (a user token
 * from POST /api/v1/users/{userId}/inbox-token, minted by your server).
 * Property: tokenProvider — optional async () => token, called when the token expires or is refused.
 * Events (bubble, composed): herald-token-required {reason}; herald-notification {notification};
 * herald-click {notification, actionUrl} (cancelable: preventDefault() stops the navigation).
 * Methods: open(), close(), refresh().
 *
 * Theme with CSS custom properties on the element or any ancestor:
 *   --herald-accent       links, focus ring, unread marker, buttons   (#3949ab)
 *   --herald-bg           panel background                            (#ffffff)
 *   --herald-fg           text                                        (#1d2433)
 *   --herald-muted        secondary text, icons                       (#5b6478)
 *   --herald-border       borders and separators                      (#dde1ea)
 *   --herald-radius       panel corner radius                         (12px)
 *   --herald-font         font family                                 (inherits the page's)
 *   --herald-panel-width  dropdown width (capped by the viewport)     (380px)
 *   --herald-badge-bg     unread badge background                     (#d93025)
 *   --herald-badge-fg     unread badge text                           (#ffffff)
 *
 * Works under a strict Content-Security-Policy: no inline script or style attributes, no eval;
 * styles are a constructable stylesheet; server text only ever goes into textContent.
 */
(() => {
  "use strict";

  const HERALD_INBOX_VERSION = "1.0.0";
  const PAGE_SIZE = 20;
  const STALL_MS = 45000;        // no byte (not even a ping) for this long: the stream is dead
  const MAX_BACKOFF_MS = 30000;
  const SVG = "http://www.w3.org/2000/svg";
  const SCRIPT_ORIGIN = (() => {
    try { return new URL(document.currentScript.src).origin; } catch (_) { return ""; }
  })();

  const CSS = `
:host { position: relative; display: inline-block; vertical-align: middle; color: var(--herald-fg, #1d2433);
  font-family: var(--herald-font, inherit); font-size: 15px; line-height: 1.45;
  --_accent: var(--herald-accent, #3949ab); --_bg: var(--herald-bg, #fff); --_fg: var(--herald-fg, #1d2433);
  --_muted: var(--herald-muted, #5b6478); --_border: var(--herald-border, #dde1ea);
  --_radius: var(--herald-radius, 12px); }
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
button { font: inherit; color: inherit; }
:focus-visible { outline: 3px solid var(--_accent); outline-offset: 2px; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }

.bell { position: relative; display: inline-grid; place-items: center; width: 40px; height: 40px; padding: 0;
  border: 1px solid transparent; border-radius: 999px; background: transparent; color: var(--_fg); cursor: pointer; }
.bell:hover { background: color-mix(in srgb, var(--_accent) 10%, transparent); }
.bell[aria-expanded="true"] { background: color-mix(in srgb, var(--_accent) 14%, transparent); color: var(--_accent); }
.bell svg { width: 22px; height: 22px; }
.badge { position: absolute; top: 1px; right: 0; min-width: 19px; height: 19px; padding: 0 5px; border-radius: 999px;
  background: var(--herald-badge-bg, #d93025); color: var(--herald-badge-fg, #fff); border: 2px solid var(--_bg);
  font-size: 11px; font-weight: 700; line-height: 15px; text-align: center; font-variant-numeric: tabular-nums; }
.bell.problem .dot-warn { display: block; }
.dot-warn { display: none; position: absolute; top: 5px; right: 5px; width: 10px; height: 10px; border-radius: 50%;
  background: #b26a00; border: 2px solid var(--_bg); }

.panel { position: absolute; z-index: 2147483000; top: calc(100% + 8px); right: 0; width: var(--herald-panel-width, 380px);
  max-width: calc(100vw - 16px); display: flex; flex-direction: column; max-height: min(72vh, 560px);
  background: var(--_bg); color: var(--_fg); border: 1px solid var(--_border); border-radius: var(--_radius);
  box-shadow: 0 12px 32px rgba(16, 24, 48, .16), 0 2px 6px rgba(16, 24, 48, .08); overflow: hidden; text-align: left; }
.panel:focus { outline: none; }
.panel:focus-visible { outline: 2px solid var(--_accent); outline-offset: -2px; }
:host([align="left"]) .panel { right: auto; left: 0; }
@media (max-width: 520px) {
  .panel { position: fixed; left: 8px; right: 8px; top: var(--_top, 64px); width: auto; max-width: none;
    max-height: calc(100vh - var(--_top, 64px) - 12px); }
}
.head { display: flex; align-items: center; gap: 8px; padding: 12px 12px 10px 16px; border-bottom: 1px solid var(--_border); }
.head h2 { margin: 0; font-size: 16px; font-weight: 700; flex: 1; }
.head .count { color: var(--_muted); font-weight: 500; font-size: 13px; margin-left: 6px; }
.link-btn { border: 0; background: transparent; color: var(--_accent); padding: 6px 8px; border-radius: 8px;
  font-size: 13px; font-weight: 600; cursor: pointer; }
.link-btn:hover:not(:disabled) { background: color-mix(in srgb, var(--_accent) 10%, transparent); }
.link-btn:disabled { color: var(--_muted); opacity: .6; cursor: default; }

.notice { display: flex; gap: 10px; align-items: flex-start; margin: 10px 12px 0; padding: 10px 12px; border-radius: 10px;
  font-size: 13.5px; background: #fff4db; color: #6b4500; }
.notice svg { flex: none; width: 18px; height: 18px; margin-top: 1px; }
.notice strong { display: block; font-size: 14px; }
.notice.error { background: #fdecea; color: #8c1d18; }

.list { list-style: none; margin: 0; padding: 4px 0; overflow-y: auto; overscroll-behavior: contain; flex: 1; }
.item { position: relative; display: flex; align-items: stretch; border-bottom: 1px solid color-mix(in srgb, var(--_border) 60%, transparent); }
.item:last-child { border-bottom: 0; }
.item.unread { background: color-mix(in srgb, var(--_accent) 6%, var(--_bg)); }
.item.fresh { animation: herald-in .45s ease-out; }
@keyframes herald-in { from { opacity: 0; transform: translateY(-6px); } to { opacity: 1; transform: none; } }
@media (prefers-reduced-motion: reduce) { .item.fresh { animation: none; } }
.open { flex: 1; min-width: 0; display: grid; grid-template-columns: 10px 1fr; column-gap: 10px; padding: 12px 4px 12px 14px;
  border: 0; background: transparent; text-align: left; cursor: pointer; border-radius: 0; }
.open:hover { background: color-mix(in srgb, var(--_fg) 4%, transparent); }
.open:focus-visible { outline-offset: -3px; }
.marker { width: 8px; height: 8px; margin-top: 7px; border-radius: 50%; background: transparent; }
.unread .marker { background: var(--_accent); }
.text { min-width: 0; display: block; }
.title { display: block; font-weight: 500; overflow-wrap: anywhere; }
.unread .title { font-weight: 700; }
.body { display: block; margin-top: 2px; color: var(--_muted); font-size: 14px; overflow-wrap: anywhere;
  display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical; overflow: hidden; }
.image { display: block; width: 100%; max-height: 160px; margin-top: 8px; object-fit: cover; border-radius: 8px;
  background: color-mix(in srgb, var(--_border) 50%, transparent); }
.meta { display: flex; gap: 6px; align-items: center; margin-top: 6px; color: var(--_muted); font-size: 12.5px; }
.meta .go { color: var(--_accent); font-weight: 600; }
.archive { flex: none; align-self: flex-start; margin: 8px 8px 0 0; width: 32px; height: 32px; display: grid; place-items: center;
  border: 0; border-radius: 8px; background: transparent; color: var(--_muted); cursor: pointer; }
.archive:hover { background: color-mix(in srgb, var(--_fg) 8%, transparent); color: var(--_fg); }
.archive svg { width: 17px; height: 17px; }

.state { padding: 36px 24px 40px; text-align: center; color: var(--_muted); }
.state svg { width: 40px; height: 40px; color: color-mix(in srgb, var(--_accent) 55%, var(--_muted)); }
.state strong { display: block; margin-top: 8px; color: var(--_fg); font-size: 15px; }
.state p { margin: 4px 0 0; font-size: 13.5px; }
.foot { border-top: 1px solid var(--_border); padding: 6px; text-align: center; }
.foot .link-btn { width: 100%; padding: 8px; }
.foot .brand { display: block; padding: 2px 0 0; font-size: 11px; color: var(--_muted); }
`;

  const ICONS = {
    bell: ["M12 3a6 6 0 0 0-6 6v3.6L4.3 15.3A1 1 0 0 0 5.2 17h13.6a1 1 0 0 0 .9-1.7L18 12.6V9a6 6 0 0 0-6-6z",
      "M9.5 19.5a2.5 2.5 0 0 0 5 0"],
    archive: ["M4 4h16v4H4z", "M5.5 8v11h13V8", "M10 12h4"],
    check: ["M20 6.5 9.5 17 4 11.5"],
    cloud: ["M7 18h10a4.5 4.5 0 0 0 .6-8.96A6 6 0 0 0 6.1 10.1 4 4 0 0 0 7 18z", "M4 4l16 16"],
    lock: ["M6 11h12v9H6z", "M8.5 11V8a3.5 3.5 0 0 1 7 0v3"],
    alert: ["M12 3 2.5 20h19z", "M12 10v4.5", "M12 17.2v.3"],
  };

  function icon(name) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("fill", "none");
    svg.setAttribute("stroke", "currentColor");
    svg.setAttribute("stroke-width", "1.8");
    svg.setAttribute("stroke-linecap", "round");
    svg.setAttribute("stroke-linejoin", "round");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    for (const d of ICONS[name]) {
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("d", d);
      svg.appendChild(path);
    }
    return svg;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  /** Only http(s) URLs are ever followed or loaded (never javascript:, data: …). */
  function safeUrl(raw) {
    if (typeof raw !== "string" || raw === "") return null;
    try {
      const url = new URL(raw, document.baseURI);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  function relativeTime(date, now) {
    const seconds = Math.round((now - date.getTime()) / 1000);
    if (seconds < 45) return "just now";
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return `${minutes} min ago`;
    const hours = Math.round(minutes / 60);
    if (hours < 24) return `${hours} h ago`;
    const days = Math.round(hours / 24);
    if (days === 1) return "yesterday";
    if (days < 7) return `${days} days ago`;
    const sameYear = date.getFullYear() === new Date(now).getFullYear();
    return date.toLocaleDateString(undefined, sameYear ? { month: "short", day: "numeric" }
      : { year: "numeric", month: "short", day: "numeric" });
  }

  function fullTime(date) {
    return date.toLocaleString(undefined, { dateStyle: "full", timeStyle: "short" });
  }

  class InboxError extends Error {
    constructor(status, code, message) {
      super(message || code);
      this.status = status;
      this.code = code;
    }
  }

  const TOKEN_CODES = new Set(["token_missing", "invalid_token", "token_expired"]);
  let sheet = null;

  class HeraldInbox extends HTMLElement {
    static get observedAttributes() { return ["token", "api-base"]; }
    static get version() { return HERALD_INBOX_VERSION; }

    constructor() {
      super();
      this._token = null;
      this._tokenProvider = null;
      this._renewal = null;
      this._gen = 0;                  // bumped on every (re)start: late answers of an older start are dropped
      this._items = new Map();        // id -> item (newest first when sorted)
      this._nodes = new Map();        // id -> <li>
      this._newest = 0;               // newest id ever held: the stream's Last-Event-ID
      this._unread = 0;
      this._cursor = null;
      this._loaded = false;
      this._state = "loading";        // loading | ready | offline | expired | refused
      this._streamOk = false;
      this._failures = 0;
      this._retryMs = 3000;
      this._marked = new Set();      // ids marked read on view (once each)
      this._seen = new Set();        // read while this panel was open: still look new until it closes
      this._timers = new Set();
      this._abort = null;
      this._ticker = null;
      this._build();
    }

    // -- public API ---------------------------------------------------------------------------------

    get token() { return this._token; }
    set token(value) { this.setAttribute("token", value == null ? "" : String(value)); }
    get tokenProvider() { return this._tokenProvider; }
    set tokenProvider(fn) {
      this._tokenProvider = typeof fn === "function" ? fn : null;
      if (this._tokenProvider && this._connected && (this._state === "expired" || !this._token)) this._restart();
    }
    get apiBase() {
      return (this.getAttribute("api-base") || SCRIPT_ORIGIN || location.origin).replace(/\/+$/, "");
    }
    get unreadCount() { return this._unread; }
    get notifications() { return this._sorted().map((item) => ({ ...item })); }

    open() {
      if (this._isOpen()) return;
      this._panel.hidden = false;
      this._bell.setAttribute("aria-expanded", "true");
      this._placePanel();
      this._observeAll();
      this._refreshTimes();
      this._panel.focus({ preventScroll: true });
    }

    close(returnFocus = false) {
      if (!this._isOpen()) return;
      this._panel.hidden = true;
      this._bell.setAttribute("aria-expanded", "false");
      if (this._observer) this._observer.disconnect();
      this._seen.clear();
      this._render();
      if (returnFocus) this._bell.focus();
    }

    refresh() { this._restart(); }

    // -- lifecycle ----------------------------------------------------------------------------------

    connectedCallback() {
      for (const name of ["token", "tokenProvider"]) {  // set on the element before this script upgraded it
        if (Object.prototype.hasOwnProperty.call(this, name)) {
          const value = this[name];
          delete this[name];
          this[name] = value;
        }
      }
      this._connected = true;
      this._token = this.getAttribute("token") || null;
      this._onDocPointer = (event) => { if (!event.composedPath().includes(this)) this.close(false); };
      this._onOnline = () => { if (this._state === "offline" || !this._streamOk) this._connectSoon(0); };
      this._onResize = () => this._placePanel();
      this._onVisible = () => {  // a panel left open in a background tab: what is in view counts once seen
        if (!document.hidden && this._isOpen() && this._observer) {
          this._observer.disconnect();
          this._observeAll();
        }
      };
      document.addEventListener("visibilitychange", this._onVisible);
      document.addEventListener("pointerdown", this._onDocPointer, true);
      window.addEventListener("online", this._onOnline);
      window.addEventListener("resize", this._onResize);
      this._ticker = setInterval(() => this._refreshTimes(), 30000);
      this._restart();
    }

    disconnectedCallback() {
      this._connected = false;
      this._stop();
      document.removeEventListener("pointerdown", this._onDocPointer, true);
      window.removeEventListener("online", this._onOnline);
      window.removeEventListener("resize", this._onResize);
      document.removeEventListener("visibilitychange", this._onVisible);
      clearInterval(this._ticker);
    }

    attributeChangedCallback(name, before, after) {
      if (before === after || !this._connected) return;
      if (name === "token") {
        if ((after || null) === this._token) return;
        this._token = after || null;
      }
      this._restart();
    }

    // -- DOM ----------------------------------------------------------------------------------------

    _build() {
      const root = this.attachShadow({ mode: "open" });
      if (!sheet) {
        sheet = new CSSStyleSheet();
        sheet.replaceSync(CSS);
      }
      this._place = new CSSStyleSheet();  // the panel's top on phones, computed (no style attributes)
      root.adoptedStyleSheets = [sheet, this._place];

      this._bell = el("button", "bell");
      this._bell.type = "button";
      this._bell.setAttribute("aria-haspopup", "dialog");
      this._bell.setAttribute("aria-expanded", "false");
      this._bell.setAttribute("aria-controls", "herald-panel");
      this._bell.appendChild(icon("bell"));
      this._badge = el("span", "badge");
      this._badge.setAttribute("aria-hidden", "true");
      this._badge.hidden = true;
      this._bell.appendChild(this._badge);
      const warn = el("span", "dot-warn");
      warn.setAttribute("aria-hidden", "true");
      this._bell.appendChild(warn);
      this._bell.addEventListener("click", () => (this._isOpen() ? this.close(false) : this.open()));

      const panel = el("section", "panel");
      panel.id = "herald-panel";
      panel.hidden = true;
      panel.tabIndex = -1;
      panel.setAttribute("role", "dialog");
      panel.setAttribute("aria-labelledby", "herald-heading");
      const head = el("div", "head");
      const h2 = el("h2", "", "Notifications");
      h2.id = "herald-heading";
      this._headCount = el("span", "count");
      h2.appendChild(this._headCount);
      this._readAll = el("button", "link-btn", "Mark all as read");
      this._readAll.type = "button";
      this._readAll.addEventListener("click", () => this._markAllRead());
      head.append(h2, this._readAll);

      this._notice = el("div", "notice");
      this._notice.setAttribute("role", "status");
      this._notice.hidden = true;

      this._list = el("ul", "list");
      this._list.setAttribute("aria-label", "Notifications");
      this._list.addEventListener("keydown", (event) => this._arrowKeys(event));

      this._empty = el("div", "state");
      this._empty.hidden = true;

      const foot = el("div", "foot");
      this._more = el("button", "link-btn", "Load more");
      this._more.type = "button";
      this._more.hidden = true;
      this._more.addEventListener("click", () => this._loadMore());
      foot.append(this._more);
      this._foot = foot;

      panel.append(head, this._notice, this._list, this._empty, foot);
      panel.addEventListener("keydown", (event) => {
        if (event.key === "Escape") {
          event.stopPropagation();
          this.close(true);
        }
      });
      this._bell.addEventListener("keydown", (event) => {
        if (event.key === "Escape" && this._isOpen()) this.close(true);
      });
      panel.addEventListener("focusout", (event) => {
        const to = event.relatedTarget;
        if (to && to !== this && !this.contains(to) && !root.contains(to)) this.close(false);
      });
      this._panel = panel;

      this._live = el("div", "sr-only");
      this._live.setAttribute("aria-live", "polite");
      this._live.setAttribute("role", "status");

      root.append(this._bell, panel, this._live);
      this._render();
    }

    _isOpen() { return !this._panel.hidden; }

    _placePanel() {
      if (!this._isOpen()) return;
      const bottom = Math.round(this._bell.getBoundingClientRect().bottom + 8);
      this._place.replaceSync(`:host { --_top: ${Math.max(8, bottom)}px; }`);
    }

    _sorted() {
      return [...this._items.values()].sort((a, b) => b.id - a.id);
    }

    _render() {
      const problem = this._state === "expired" || this._state === "refused";
      const count = problem ? 0 : this._unread;
      this._badge.hidden = count <= 0;
      this._badge.textContent = count > 99 ? "99+" : String(count);
      let label = "Notifications";
      if (this._state === "expired") label += ", session expired";
      else if (this._state === "refused") label += ", unavailable";
      else if (this._loaded) label += count ? `, ${count} unread` : ", no unread";
      if (this._offline()) label += ", offline";
      this._bell.setAttribute("aria-label", label);
      this._bell.classList.toggle("problem", problem || this._offline());
      this._headCount.textContent = count ? `${count} unread` : "";
      this._readAll.disabled = count <= 0;
      this._readAll.hidden = problem;

      this._renderNotice();
      const items = this._sorted();
      // Keyed reconciliation: nodes are kept (focus, observers), only order and classes change.
      let previous = null;
      for (const item of items) {
        let node = this._nodes.get(item.id);
        if (!node) {
          node = this._itemNode(item);
          this._nodes.set(item.id, node);
          if (this._observer && this._isOpen()) this._observer.observe(node);
        }
        node.classList.toggle("unread", !item.readAt || this._seen.has(item.id));
        const expected = previous ? previous.nextSibling : this._list.firstChild;
        if (expected !== node) this._list.insertBefore(node, expected);
        previous = node;
      }
      for (const [id, node] of this._nodes) {
        if (!this._items.has(id)) {
          if (this._observer) this._observer.unobserve(node);
          node.remove();
          this._nodes.delete(id);
        }
      }
      this._list.hidden = items.length === 0;
      this._more.hidden = !this._cursor || problem;
      this._foot.hidden = this._more.hidden;
      this._renderEmpty(items.length === 0);
    }

    _renderNotice() {
      const notice = this._notice;
      notice.replaceChildren();
      notice.className = "notice";
      let title = null;
      let text = null;
      let kind = "alert";
      if (this._offline()) {
        kind = "cloud";
        title = "Offline — reconnecting…";
        text = "New notifications will appear when the connection is back.";
      } else if (this._state === "expired") {
        notice.classList.add("error");
        kind = "lock";
        title = "Your session expired";
        text = "Reload the page or sign in again to see your notifications.";
      } else if (this._state === "refused") {
        notice.classList.add("error");
        title = "Notifications are unavailable here";
        text = this._refusal || "This site is not allowed to load notifications from Herald.";
      }
      notice.hidden = title === null;
      if (title === null) return;
      const words = el("div");
      words.append(el("strong", "", title), el("span", "", text));
      notice.append(icon(kind), words);
    }

    /** Herald cannot be reached: the feed never loaded, or the stream failed to come back twice. */
    _offline() {
      return this._state === "offline" || (this._state === "ready" && !this._streamOk && this._failures > 1);
    }

    _renderEmpty(empty) {
      const box = this._empty;
      box.replaceChildren();
      box.hidden = !empty;
      if (!empty) return;
      if (this._state === "expired" || this._state === "refused") {
        box.hidden = true;
      } else if (!this._loaded) {
        box.append(el("p", "", this._state === "offline" ? "Notifications will load when you're back online."
          : "Loading notifications…"));
      } else {
        box.append(icon("check"), el("strong", "", "You're all caught up"),
          el("p", "", "New notifications will show up here."));
      }
    }

    _itemNode(item) {
      const li = el("li", "item");
      li.dataset.id = String(item.id);
      const open = el("button", "open");
      open.type = "button";
      const marker = el("span", "marker");
      marker.setAttribute("aria-hidden", "true");
      const text = el("span", "text");
      const title = el("span", "title", item.title || "Notification");
      text.appendChild(title);
      const status = el("span", "sr-only state-word", "");
      text.appendChild(status);
      if (item.body) text.appendChild(el("span", "body", item.body));
      const image = safeUrl(item.imageUrl);
      if (image) {
        const img = el("img", "image");
        img.alt = "";
        img.loading = "lazy";
        img.decoding = "async";
        img.referrerPolicy = "no-referrer";
        img.addEventListener("error", () => img.remove());
        img.src = image;
        text.appendChild(img);
      }
      const meta = el("span", "meta");
      const time = el("time");
      const created = new Date(item.createdAt);
      if (!Number.isNaN(created.getTime())) {
        time.dateTime = created.toISOString();
        time.title = fullTime(created);
        time.textContent = relativeTime(created, Date.now());
      }
      meta.appendChild(time);
      if (safeUrl(item.actionUrl)) {
        meta.appendChild(el("span", "", "·"));
        meta.appendChild(el("span", "go", "Open"));
      }
      text.appendChild(meta);
      open.append(marker, text);
      open.addEventListener("click", () => this._click(item.id));

      const archive = el("button", "archive");
      archive.type = "button";
      archive.title = "Archive";
      archive.setAttribute("aria-label", `Archive: ${item.title || "notification"}`);
      archive.appendChild(icon("archive"));
      archive.addEventListener("click", () => this._archive(item.id));
      li.append(open, archive);
      this._stateWord(li, item);
      return li;
    }

    _stateWord(li, item) {
      const word = li.querySelector(".state-word");
      if (word) word.textContent = item.readAt ? "" : " (unread)";
    }

    _refreshTimes() {
      const now = Date.now();
      for (const time of this._list.querySelectorAll("time")) {
        const date = new Date(time.dateTime);
        if (!Number.isNaN(date.getTime())) time.textContent = relativeTime(date, now);
      }
    }

    _arrowKeys(event) {
      if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
      const buttons = [...this._list.querySelectorAll("button.open")];
      const at = buttons.indexOf(this.shadowRoot.activeElement);
      if (at < 0) return;
      event.preventDefault();
      const next = buttons[Math.min(buttons.length - 1, Math.max(0, at + (event.key === "ArrowDown" ? 1 : -1)))];
      next.focus();
    }

    _announce(text) {
      this._live.textContent = "";
      this._later(() => { this._live.textContent = text; }, 50);
    }

    _event(name, detail, cancelable = false) {
      const event = new CustomEvent(name, { detail, bubbles: true, composed: true, cancelable });
      return this.dispatchEvent(event);
    }

    // -- mark read on view --------------------------------------------------------------------------

    _observeAll() {
      if (!("IntersectionObserver" in window)) return;
      if (!this._observer) {
        this._observer = new IntersectionObserver((entries) => {
          for (const entry of entries) {
            const id = Number(entry.target.dataset.id);
            if (entry.isIntersecting && this._isOpen() && !document.hidden) this._markRead(id);
          }
        }, { root: null, threshold: 0.6 });
      }
      for (const node of this._nodes.values()) this._observer.observe(node);
    }

    async _markRead(id) {
      const item = this._items.get(id);
      if (!item || item.readAt || this._marked.has(id)) return;
      this._marked.add(id);
      this._seen.add(id);
      try {
        const answer = await this._api("POST", `/inbox/v1/notifications/${id}/read`);
        this._apply(answer.notification, answer.unreadCount);
      } catch (err) {
        this._marked.delete(id);  // offline: try again when it is seen again
        this._handle(err);
      }
    }

    // -- actions ------------------------------------------------------------------------------------

    async _click(id) {
      const item = this._items.get(id);
      if (!item) return;
      let actionUrl = item.actionUrl || null;
      let notification = item;
      try {
        if (actionUrl) {
          const answer = await this._api("POST", `/inbox/v1/notifications/${id}/click`);
          this._apply(answer.notification, answer.unreadCount);
          notification = answer.notification;
          actionUrl = answer.actionUrl || null;
        } else if (!item.readAt) {
          const answer = await this._api("POST", `/inbox/v1/notifications/${id}/read`);
          this._apply(answer.notification, answer.unreadCount);
          notification = answer.notification;
        }
      } catch (err) {
        this._handle(err);  // the click itself still goes where the user asked
      }
      const go = safeUrl(actionUrl);
      const proceed = this._event("herald-click", { notification: { ...notification }, actionUrl: go }, true);
      if (proceed && go) window.location.assign(go);
    }

    async _archive(id) {
      const node = this._nodes.get(id);
      const neighbour = node && (node.nextElementSibling || node.previousElementSibling);
      try {
        const answer = await this._api("POST", `/inbox/v1/notifications/${id}/archive`);
        this._items.delete(id);
        this._unread = answer.unreadCount;
        this._render();
        this._announce("Notification archived");
        const target = neighbour && neighbour.isConnected ? neighbour.querySelector("button.open") : null;
        (target || this._panel).focus();
      } catch (err) {
        this._handle(err);
      }
    }

    async _markAllRead() {
      try {
        const answer = await this._api("POST", "/inbox/v1/notifications/read-all");
        const now = new Date().toISOString();
        for (const item of this._items.values()) if (!item.readAt) item.readAt = now;
        for (const [id, node] of this._nodes) this._stateWord(node, this._items.get(id));
        this._unread = answer.unreadCount;
        this._render();
        this._announce("All notifications marked as read");
      } catch (err) {
        this._handle(err);
      }
    }

    async _loadMore() {
      if (!this._cursor) return;
      const gen = this._gen;
      this._more.disabled = true;
      try {
        const page = await this._api("GET", `/inbox/v1/notifications?limit=${PAGE_SIZE}&cursor=${encodeURIComponent(this._cursor)}`);
        if (gen !== this._gen) return;
        for (const item of page.items) this._hold(item);
        this._cursor = page.nextCursor;
        this._unread = page.unreadCount;
        this._render();
      } catch (err) {
        this._handle(err);
      } finally {
        this._more.disabled = false;
      }
    }

    _hold(item) {
      if (item.archivedAt) return false;
      this._newest = Math.max(this._newest, item.id);
      const known = this._items.has(item.id);
      this._items.set(item.id, item);
      return !known;
    }

    _apply(notification, unreadCount) {
      if (notification && this._items.has(notification.id)) {
        if (notification.archivedAt) this._items.delete(notification.id);
        else this._items.set(notification.id, notification);
        const node = this._nodes.get(notification.id);
        if (node && !notification.archivedAt) this._stateWord(node, notification);
      }
      if (typeof unreadCount === "number") this._unread = unreadCount;
      this._render();
    }

    // -- HTTP ---------------------------------------------------------------------------------------

    async _api(method, path, retried = false) {
      const token = this._token;
      if (!token) {
        const fresh = await this._renewToken("token_missing", null);
        if (!fresh) throw new InboxError(401, "token_missing", "No token");
        return this._api(method, path, true);
      }
      let response;
      try {
        response = await fetch(this.apiBase + path, {
          method, headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
          cache: "no-store", credentials: "omit", mode: "cors",
        });
      } catch (_) {
        throw await this._networkError();
      }
      if (response.ok) return response.json();
      const error = await this._errorOf(response);
      if (error.status === 401 && TOKEN_CODES.has(error.code) && !retried) {
        const fresh = await this._renewToken(error.code, token);
        if (fresh) return this._api(method, path, true);
      }
      throw error;
    }

    async _errorOf(response) {
      let code = `http_${response.status}`;
      let message = response.statusText;
      try {
        const body = await response.json();
        if (body && body.error) {
          code = body.error.code || code;
          message = body.error.message || message;
        }
      } catch (_) { /* not JSON */ }
      return new InboxError(response.status, code, message);
    }

    /** A failed fetch is either the network or a CORS refusal (the browser hides which): ask Herald's
     *  health check in no-cors mode — if Herald answers at all, this page's origin was refused. */
    async _networkError() {
      try {
        await fetch(`${this.apiBase}/healthz`, { mode: "no-cors", cache: "no-store", credentials: "omit" });
        return new InboxError(403, "origin_not_allowed",
          `This site (${location.origin}) is not allowed to load notifications from Herald. An admin adds it `
          + "to the inbox's allowed origins.");
      } catch (_) {
        return new InboxError(0, "network", "Herald cannot be reached");
      }
    }

    _renewToken(reason, failed) {
      if (!this._renewal) {
        this._renewal = (async () => {
          const before = this._token;
          this._event("herald-token-required", { reason });
          // A listener may have set the token attribute synchronously.
          if (this._token && this._token !== failed && this._token !== before) return this._token;
          if (this._tokenProvider) {
            try {
              const fresh = await this._tokenProvider();
              if (typeof fresh === "string" && fresh && fresh !== failed) {
                this._token = fresh;
                return fresh;
              }
            } catch (_) { /* no new token: the expired state below */ }
          }
          return this._token && this._token !== failed ? this._token : null;
        })().finally(() => { this._renewal = null; });
      }
      return this._renewal;
    }

    _handle(err) {
      if (!(err instanceof InboxError)) throw err;
      if (err.status === 401) this._expire();
      else if (err.status === 403) this._refuse(err.message);
      else if (err.status === 0) {
        if (!this._loaded) this._state = "offline";
        if (!this._streamOk) {
          this._failures = Math.max(1, this._failures);
          this._connectSoon();
        }
        this._render();
      } else {
        this._announce(`Could not update notifications: ${err.message}`);
      }
    }

    _expire() {
      this._stop();
      this._state = "expired";
      this._items.clear();
      this._cursor = null;
      this._unread = 0;
      this._render();
    }

    _refuse(message) {
      this._stop();
      this._state = "refused";
      this._refusal = message;
      this._items.clear();
      this._cursor = null;
      this._unread = 0;
      this._render();
    }

    // -- start, feed, stream ------------------------------------------------------------------------

    _later(fn, ms) {
      const timer = setTimeout(() => { this._timers.delete(timer); fn(); }, ms);
      this._timers.add(timer);
      return timer;
    }

    _stop() {
      this._gen += 1;
      if (this._abort) this._abort.abort();
      this._abort = null;
      for (const timer of this._timers) clearTimeout(timer);
      this._timers.clear();
      this._connecting = false;
      this._streamOk = false;
    }

    _restart() {
      this._stop();
      this._state = this._loaded && this._state === "ready" ? "ready" : "loading";
      this._failures = 0;
      this._marked.clear();
      this._render();
      this._start(this._gen);
    }

    /** The feed's first page in place of what is held; false if a newer start overtook this one. */
    async _firstPage(gen) {
      const page = await this._api("GET", `/inbox/v1/notifications?limit=${PAGE_SIZE}`);
      if (gen !== this._gen) return false;
      this._items.clear();
      for (const item of page.items) this._hold(item);
      this._cursor = page.nextCursor;
      this._unread = page.unreadCount;
      return true;
    }

    async _start(gen) {
      try {
        if (!(await this._firstPage(gen))) return;
        this._loaded = true;
        this._state = "ready";
        this._failures = 0;
        this._render();
        if (this._isOpen()) this._observeAll();
        this._stream(gen);
      } catch (err) {
        if (gen !== this._gen) return;
        if (err instanceof InboxError && err.status === 0) {
          this._state = "offline";
          this._failures += 1;
          this._render();
          this._later(() => this._start(this._gen), this._backoff());
        } else {
          this._handle(err);
        }
      }
    }

    _backoff() {
      const base = Math.min(MAX_BACKOFF_MS, this._retryMs * 2 ** Math.max(0, this._failures - 1));
      return Math.round(base * (0.8 + Math.random() * 0.4));
    }

    _connectSoon(delay) {
      const gen = this._gen;
      if (this._state === "expired" || this._state === "refused") return;
      if (this._connecting) return;
      this._connecting = true;
      this._later(() => {
        this._connecting = false;
        if (gen !== this._gen) return;
        if (!this._loaded) this._start(gen);
        else this._stream(gen);
      }, delay === undefined ? this._backoff() : delay);
    }

    async _stream(gen, retried = false) {
      if (gen !== this._gen) return;
      if (this._abort) this._abort.abort();
      const abort = new AbortController();
      this._abort = abort;
      const token = this._token;
      let stall = null;
      const alive = () => {
        clearTimeout(stall);
        stall = setTimeout(() => abort.abort(), STALL_MS);
      };
      let opened = false;
      let ended = "dropped";
      try {
        const response = await fetch(`${this.apiBase}/inbox/v1/stream`, {
          headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream", "Last-Event-ID": String(this._newest) },
          cache: "no-store", credentials: "omit", mode: "cors", signal: abort.signal,
        });
        if (!response.ok) {
          const error = await this._errorOf(response);
          if (gen !== this._gen) return undefined;
          if (error.status === 401 && !retried) {
            const fresh = await this._renewToken(error.code, token);
            if (fresh && gen === this._gen) return this._stream(gen, true);
          }
          if (error.status < 500 && error.status !== 429) return this._handle(error);
          throw error;  // Herald is unwell (5xx, 429): like the network, try again later
        }
        opened = true;
        this._streamOk = true;
        this._failures = 0;
        if (this._state === "offline") this._state = "ready";
        this._render();
        alive();
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        const parser = this._parser(gen);
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          alive();
          if (parser(decoder.decode(value, { stream: true })) === "expired") {
            ended = "expired";
            abort.abort();
            break;
          }
        }
        if (ended !== "expired") ended = "closed";
      } catch (err) {
        if (gen !== this._gen) return undefined;
        if (!opened && !(err instanceof InboxError)) {  // fetch refused: the network, or CORS?
          const why = await this._networkError();
          if (why.status === 403) ended = why;
        }
      } finally {
        clearTimeout(stall);
        if (this._abort === abort) this._abort = null;
      }
      if (gen !== this._gen) return undefined;
      this._streamOk = false;
      if (ended instanceof InboxError) return this._handle(ended);
      if (ended === "expired") {
        const fresh = await this._renewToken("token_expired", token);
        if (gen !== this._gen) return undefined;
        if (fresh) return this._stream(gen, true);
        return this._expire();
      }
      if (ended === "dropped") this._failures += 1;
      this._render();
      return this._connectSoon(ended === "closed" && this._failures === 0 ? 250 : this._backoff());
    }

    /** An incremental text/event-stream parser (the WHATWG rules); returns "expired" when told so. */
    _parser(gen) {
      let buffer = "";
      let skipLF = false;
      let type = "";
      let data = "";
      let id = null;
      return (chunk) => {
        if (skipLF && chunk.startsWith("\n")) chunk = chunk.slice(1);
        skipLF = false;
        buffer += chunk;
        const lines = buffer.split(/\r\n|\r|\n/);
        buffer = lines.pop();
        if (buffer === "" && chunk.endsWith("\r")) skipLF = true;
        for (const line of lines) {
          if (line === "") {
            if (data !== "") {
              const outcome = this._dispatch(gen, type || "message", data.slice(0, -1), id);
              if (outcome) return outcome;
            }
            type = "";
            data = "";
            id = null;
            continue;
          }
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? "" : line.slice(colon + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (field === "event") type = value;
          else if (field === "data") data += `${value}\n`;
          else if (field === "id" && !value.includes("\0")) id = value;
          else if (field === "retry" && /^\d+$/.test(value)) this._retryMs = Number(value);
        }
        return null;
      };
    }

    _dispatch(gen, type, raw, id) {
      if (gen !== this._gen) return "expired";
      let data;
      try { data = JSON.parse(raw); } catch (_) { return null; }
      if (type === "notification") {
        if (id !== null && /^\d+$/.test(id)) this._newest = Math.max(this._newest, Number(id));
        if (!data || typeof data.id !== "number" || this._items.has(data.id) || !this._hold(data)) return null;
        this._render();
        const node = this._nodes.get(data.id);
        if (node) {
          node.classList.add("fresh");
          if (this._isOpen() && this._observer) this._observer.observe(node);
        }
        this._announce(`New notification: ${data.title || ""}`);
        this._event("herald-notification", { notification: { ...data } });
      } else if (type === "unread") {
        if (typeof data.unreadCount === "number" && data.unreadCount !== this._unread) {
          this._unread = data.unreadCount;
          this._render();
        }
      } else if (type === "reset") {
        this._later(() => this._reload(gen), 0);
      } else if (type === "expired") {
        return "expired";
      }
      return null;
    }

    /** Too much missed to replay: the first page again, keeping the stream. */
    async _reload(gen) {
      try {
        if (await this._firstPage(gen)) this._render();
      } catch (err) {
        this._handle(err);
      }
    }
  }

  HeraldInbox.VERSION = HERALD_INBOX_VERSION;
  if (!customElements.get("herald-inbox")) customElements.define("herald-inbox", HeraldInbox);
  window.HeraldInbox = window.HeraldInbox || HeraldInbox;
})();
