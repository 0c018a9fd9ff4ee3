// Small progressive enhancements; the pages work without this file.
(function () {
  "use strict";
  // ---- Confirmation dialog (issue 13, accessibility) ----------------------------------------
  // Ask before destructive actions: <form data-confirm="..."> (plain and HTMX forms) opens a modal
  // <dialog> with that text: focus moves in (to the safe choice) and stays in, Escape or "Go back"
  // cancels, focus returns to the button that asked; confirming submits the form as clicked.
  var dialog = null, pending = null;
  function buildDialog() {
    dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    dialog.setAttribute("aria-labelledby", "confirm-title");
    dialog.setAttribute("aria-describedby", "confirm-message");
    var title = document.createElement("h2"), message = document.createElement("p");
    var row = document.createElement("div"), back = document.createElement("button"), ok = document.createElement("button");
    title.id = "confirm-title";
    message.id = "confirm-message";
    row.className = "button-row";
    back.type = ok.type = "button";
    back.className = "btn";
    back.textContent = "Go back";
    back.dataset.confirmBack = "";
    ok.dataset.confirmOk = "";
    back.addEventListener("click", function () { dialog.close(""); });
    ok.addEventListener("click", function () { dialog.close("confirm"); });
    row.append(back, ok);
    dialog.append(title, message, row);
    dialog.addEventListener("keydown", function (event) {  // keep Tab inside the dialog
      if (event.key !== "Tab") { return; }
      if (event.shiftKey && document.activeElement === back) { event.preventDefault(); ok.focus(); }
      else if (!event.shiftKey && document.activeElement === ok) { event.preventDefault(); back.focus(); }
    });
    dialog.addEventListener("close", function () {
      var asked = pending;
      pending = null;
      if (!asked) { return; }
      var returnTo = asked.submitter && asked.submitter.isConnected ? asked.submitter
        : asked.form.querySelector("button, [type=submit]");
      if (returnTo) { returnTo.focus(); }
      if (dialog.returnValue !== "confirm") { return; }
      asked.form.dataset.confirmed = "1";
      if (asked.submitter && asked.submitter.form === asked.form) { asked.form.requestSubmit(asked.submitter); }
      else { asked.form.requestSubmit(); }
    });
    document.body.appendChild(dialog);
  }
  function ask(form, submitter) {
    if (!dialog) { buildDialog(); }
    var label = submitter ? (submitter.textContent || submitter.value || "").trim() : "";
    var ok = dialog.querySelector("[data-confirm-ok]");
    dialog.querySelector("#confirm-title").textContent = label ? label + "?" : "Are you sure?";
    dialog.querySelector("#confirm-message").textContent = form.dataset.confirm;
    ok.textContent = label || "Confirm";
    ok.className = submitter && submitter.classList.contains("btn-danger") ? "btn btn-danger-solid" : "btn btn-primary";
    pending = {form: form, submitter: submitter};
    dialog.returnValue = "";
    dialog.showModal();
    dialog.querySelector("[data-confirm-back]").focus();
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) { return; }
    if (form.dataset.confirmed) { delete form.dataset.confirmed; return; }  // the user said yes
    event.preventDefault();
    event.stopImmediatePropagation();
    if (typeof HTMLDialogElement === "function" && form.requestSubmit) { ask(form, event.submitter || null); }
    else if (window.confirm(form.dataset.confirm)) { form.dataset.confirmed = "1"; form.submit(); }
  }, true);
  // ---- Tables become stacked cards on a phone (issue 13): name each cell by its column --------
  function stackTables(root) {
    if (!root || !root.querySelectorAll) { return; }
    root.querySelectorAll("table:not([data-no-stack])").forEach(function (table) {
      var head = table.tHead;
      if (!head || !head.rows.length) { return; }
      var labels = Array.prototype.map.call(head.rows[0].cells, function (cell) {
        return cell.textContent.replace(/\s+/g, " ").trim();
      });
      table.setAttribute("role", "table");  // keep table semantics when CSS stacks the cells
      head.setAttribute("role", "rowgroup");
      Array.prototype.forEach.call(head.rows[0].cells, function (cell) { cell.setAttribute("role", "columnheader"); });
      head.rows[0].setAttribute("role", "row");
      Array.prototype.forEach.call(table.tBodies, function (body) {
        body.setAttribute("role", "rowgroup");
        Array.prototype.forEach.call(body.rows, function (row) {
          var column = 0;
          row.setAttribute("role", "row");
          Array.prototype.forEach.call(row.cells, function (cell) {
            if (!cell.hasAttribute("data-label")) { cell.setAttribute("data-label", labels[column] || ""); }
            if (!cell.hasAttribute("role")) { cell.setAttribute("role", cell.tagName === "TH" ? "rowheader" : "cell"); }
            column += cell.colSpan || 1;
          });
        });
      });
      table.classList.add("stack");
    });
  }
  document.addEventListener("DOMContentLoaded", function () { stackTables(document); });
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.target, table = target.closest ? target.closest("table") : null;
    stackTables(table ? table.parentNode : target);
  });
  // Select a freshly shown secret so it is easy to copy.
  document.addEventListener("DOMContentLoaded", function () {
    var key = document.getElementById("new-key");
    if (key) { key.focus(); key.select(); }
  });
})();
(function () {
  "use strict";
  // ---- Times (issue 13) ----------------------------------------------------------------
  // The server writes every time in the viewer's zone (dashboard/web/timefmt.py). Here we
  // remember the browser's zone once, keep "in 2 min" / "3 h ago" current, and filter the
  // time zone picker as you type.
  var UNITS = [[31536000, "yr", 63072000], [2592000, "mo", 5184000], [86400, "day", 172800], [3600, "h", 7200],
    [60, "min", 60]];  // [size, unit, used from] as in timefmt.relative
  function relative(ms) {
    var future = ms > 0, span = Math.floor(Math.abs(ms) / 1000);
    if (span < 60) { return future ? "in under a minute" : "just now"; }
    for (var i = 0; i < UNITS.length; i++) {
      if (span >= UNITS[i][2]) {
        var n = Math.floor(span / UNITS[i][0]), unit = UNITS[i][1];
        var text = n + " " + unit + (unit === "day" && n > 1 ? "s" : "");
        return future ? "in " + text : text + " ago";
      }
    }
    return "";
  }
  function refresh() {
    var now = Date.now();
    document.querySelectorAll("time[data-when]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime")), rel = el.querySelector("[data-rel]");
      if (rel && !isNaN(at)) { rel.textContent = relative(at - now); }
    });
  }
  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; }
    catch (e) { return ""; }
  }
  function rememberZone() {
    var link = document.querySelector("a.who-zone[data-zone-save]"), zone = "";
    if (!link || link.dataset.zone || !window.fetch) { return; }
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return; }
    if (!zone) { return; }
    var token = csrfToken();
    fetch(link.dataset.zoneSave, {
      method: "POST", credentials: "same-origin", headers: {"X-CSRFToken": token},
      body: new URLSearchParams({timezone: zone, auto: "1", csrf_token: token})
    }).then(function (r) { return r.ok ? r.json() : null; }).then(function (data) {
      if (!data || !data.changed) { return; }
      link.dataset.zone = data.timezone;
      // This page was written in UTC: show it again in the zone just remembered, keeping its messages.
      if (data.timezone === "UTC") { return; }
      var kept = [];
      document.querySelectorAll("#flashes .flash").forEach(function (el) {
        kept.push({cls: el.className, text: el.textContent});
      });
      try { window.sessionStorage.setItem("herald-flashes", JSON.stringify(kept)); } catch (e) { /* private mode */ }
      window.location.reload();
    }).catch(function () {});
  }
  function words(text) { return text.toLowerCase().replace(/[_\/()]/g, " ").split(/\s+/).filter(Boolean); }
  function filterZones(input) {
    var select = document.getElementById(input.dataset.zoneSearch);
    if (!select) { return; }
    var wanted = words(input.value), shown = 0, first = null;
    Array.prototype.forEach.call(select.options, function (option) {
      var hay = words(option.value + " " + option.text).join(" ");
      var match = wanted.every(function (w) { return hay.indexOf(w) !== -1; });
      option.hidden = !match;
      if (match) { shown += 1; first = first || option; }
    });
    var current = select.options[select.selectedIndex];
    if (first && (!current || current.hidden)) { select.value = first.value; }
    var count = document.getElementById(select.id + "-count");
    if (count) {
      count.hidden = !wanted.length;
      count.textContent = shown ? shown + (shown === 1 ? " zone matches" : " zones match") + "; showing "
        + select.options[select.selectedIndex].text : "No zone matches “" + input.value + "”.";
    }
  }
  function enhancePickers(root) {
    root.querySelectorAll("input[data-zone-search]").forEach(function (input) { input.hidden = false; });
  }
  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("input[data-zone-search]")) { filterZones(event.target); }
  });
  document.addEventListener("keydown", function (event) {  // Enter in the search picks, it does not submit
    if (event.key === "Enter" && event.target.matches && event.target.matches("input[data-zone-search]")) {
      event.preventDefault();
      var select = document.getElementById(event.target.dataset.zoneSearch);
      if (select) { select.focus(); }
    }
  });
  function restoreFlashes() {  // the messages of a page reloaded by rememberZone
    var kept = null, box = document.getElementById("flashes");
    try { kept = JSON.parse(window.sessionStorage.getItem("herald-flashes") || "null");
      window.sessionStorage.removeItem("herald-flashes"); } catch (e) { return; }
    if (!kept || !box || box.children.length) { return; }
    kept.forEach(function (item) {
      var div = document.createElement("div");
      div.className = item.cls; div.textContent = item.text; box.appendChild(div);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    restoreFlashes();
    enhancePickers(document);
    rememberZone();
    window.setInterval(refresh, 20000);
  });
  document.addEventListener("htmx:afterSettle", function (event) { enhancePickers(event.target); refresh(); });
})();
(function () {
  "use strict";
  // HTMX errors reach the screen. A 4xx/5xx answer shows the server's message in the requesting
  // form's error region ([data-error-region], aria-live); a view that re-renders its own form with
  // errors (the answer holds a [data-error-region]) is swapped in as usual; a network failure says so.
  var OFFLINE = "Couldn't reach Herald — check your connection and try again.";

  function pageRegion() {
    var region = document.getElementById("htmx-errors");
    if (!region) {
      region = document.createElement("div");
      region.id = "htmx-errors";
      region.className = "form-errors error-region";
      region.setAttribute("data-error-region", "");
      region.setAttribute("aria-live", "assertive");
      var main = document.querySelector("main") || document.body;
      main.insertBefore(region, main.firstChild);
    }
    return region;
  }

  function regionFor(elt) {
    var holder = elt && elt.closest ? elt.closest("[data-error-target]") : null;
    var region = holder ? document.querySelector(holder.getAttribute("data-error-target")) : null;
    var form = !region && elt && elt.closest ? elt.closest("form") : null;
    return region || (form && form.querySelector("[data-error-region]")) || pageRegion();
  }

  function show(region, message, details) {
    var box = document.createElement("div");
    box.setAttribute("role", "alert");
    var p = document.createElement("p");
    p.textContent = message;
    box.appendChild(p);
    if (details.length) {
      var list = document.createElement("ul");
      details.forEach(function (text) {
        var li = document.createElement("li");
        li.textContent = text;
        list.appendChild(li);
      });
      box.appendChild(list);
    }
    region.replaceChildren(box);
  }

  function fromResponse(xhr) {
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var card = doc.querySelector(".error-card");
    if (!card && doc.querySelector("[data-error-region]")) { return null; }
    var message = "", details = [];
    if (card) {
      var para = card.querySelector("p:not(.error-code)");
      var title = card.querySelector("h1, h2");
      message = (para && para.textContent.trim()) || (title && title.textContent.trim()) || "";
      card.querySelectorAll(".error-details li").forEach(function (li) { details.push(li.textContent.trim()); });
    }
    if (!message) {
      message = xhr.status >= 500
        ? "Herald ran into a problem (error " + xhr.status + "). Nothing was changed; please try again."
        : "Herald could not do that (error " + xhr.status + "). Reload the page and try again.";
    }
    return {message: message, details: details};
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var region = regionFor(event.target);
    region.replaceChildren();
    var page = document.getElementById("htmx-errors");
    if (page) { page.replaceChildren(); }
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    if (!detail.xhr || detail.xhr.status < 400) { return; }
    var error = fromResponse(detail.xhr);
    detail.isError = false;
    if (error === null) { detail.shouldSwap = true; return; }
    detail.shouldSwap = false;
    // beforeSwap fires on the swap target; the region belongs to the element that made the request
    show(regionFor((detail.requestConfig && detail.requestConfig.elt) || detail.elt || event.target),
         error.message, error.details);
  });
  function offline(event) { show(regionFor(event.target), OFFLINE, []); }
  document.addEventListener("htmx:sendError", offline);
  document.addEventListener("htmx:timeout", offline);
})();

// Review & send's local-time panel: its sentence says the time and date as they are typed
// ("Each recipient gets it at 09:00 … on 2 Dec 2026"); the server renders the same words first.
(function () {
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  document.addEventListener("input", function (event) {
    var input = event.target, form = input.form;
    if (!form || (input.name !== "local_time" && input.name !== "local_date")) { return; }
    var echo = form.querySelector("[data-echo='" + input.name + "']");
    if (!echo) { return; }
    var value = input.value, parts = value.split("-");
    if (input.name === "local_date") {
      value = parts.length === 3 ? Number(parts[2]) + " " + MONTHS[Number(parts[1]) - 1] + " " + parts[0]
        : "the date chosen";
    }
    echo.textContent = value || "the time chosen";
  });
})();
