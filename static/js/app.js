// Small progressive enhancements; the pages work without this file.
(function () {
  "use strict";
  // Ask before destructive actions: <form data-confirm="..."> (plain and HTMX forms).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);
  // Select a freshly shown secret so it is easy to copy.
  document.addEventListener("DOMContentLoaded", function () {
    var key = document.getElementById("new-key");
    if (key) { key.focus(); key.select(); }
  });
})();
(function () {
  "use strict";
  // Show <time data-local> in the viewer's time zone; default schedule pickers to it.
  function localise(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = d.toLocaleString([], {dateStyle: "medium", timeStyle: "short"}); el.title = el.getAttribute("datetime"); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    localise(document);
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    document.querySelectorAll("select[data-browser-timezone]").forEach(function (select) {
      if (zone && select.querySelector('option[value="' + zone + '"]')) { select.value = zone; }
    });
  });
  document.addEventListener("htmx:afterSwap", function (event) { localise(event.target.parentNode || document); });
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
    show(regionFor(event.target), error.message, error.details);
  });
  function offline(event) { show(regionFor(event.target), OFFLINE, []); }
  document.addEventListener("htmx:sendError", offline);
  document.addEventListener("htmx:timeout", offline);
})();
