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
