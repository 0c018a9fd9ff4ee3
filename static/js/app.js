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
