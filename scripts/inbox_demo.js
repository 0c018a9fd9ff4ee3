// The demo host's own script (no inline script under its CSP): hand the widget a way to get a fresh
// token from this app's server, and show the widget's events as a host app would receive them.
(() => {
  "use strict";
  const inbox = document.getElementById("inbox");
  const list = document.getElementById("events");
  const problem = document.getElementById("problem");
  const user = document.body.dataset.user;
  if (problem && !problem.textContent.trim()) problem.hidden = true;
  if (!inbox) return;

  inbox.tokenProvider = async () => {
    const response = await fetch(`/token?user=${encodeURIComponent(user)}`, { cache: "no-store" });
    if (!response.ok) throw new Error(`token: HTTP ${response.status}`);
    return (await response.json()).token;
  };

  function log(name, text) {
    const item = document.createElement("li");
    const time = document.createElement("time");
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString();
    const label = document.createElement("code");
    label.textContent = name;
    item.append(time, " ", label, " ", text);
    list.prepend(item);
    while (list.children.length > 20) list.lastElementChild.remove();
  }

  inbox.addEventListener("herald-notification", (event) => {
    log("herald-notification", `“${event.detail.notification.title}”`);
  });
  inbox.addEventListener("herald-click", (event) => {
    log("herald-click", event.detail.actionUrl ? `→ ${event.detail.actionUrl}` : "(no link)");
  });
  inbox.addEventListener("herald-token-required", (event) => {
    log("herald-token-required", `(${event.detail.reason}): asking this app's server for a new token`);
  });
})();
