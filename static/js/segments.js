// Segment builder (templates/audiences/segment_form.html). The form asks for a live count
// (segments.count_preview) on change/keyup; its buttons and attribute/operator selects ask for a
// redraw of the rows (segments.builder). Both share the form's hx-sync="this:replace", so:
// - a redraw replaces (aborts) a count in flight: the redraw answers with its own count;
// - a count asked for while a redraw is in flight is dropped here (htmx:confirm comes before
//   hx-sync), so it can never cancel the redraw (a value typed and "Attribute" clicked at once);
// - a structural click while a redraw is in flight is dropped too (the builder is marked busy);
// - text typed into a row while it is being redrawn is carried into the redrawn row (rows carry
//   data-was, their index in the form that was sent) and counted again.
(function () {
  "use strict";
  var VALUE = "input[type=text], input[type=number], input[type=date]";
  var sent = null;  // the values of the redraw in flight: name -> value

  function builderForm(elt) {
    var form = elt && elt.closest ? elt.closest("form.sb-form") : null;
    return form && document.getElementById("segment-builder") && form.contains(document.getElementById("segment-builder")) ? form : null;
  }
  function isRedraw(elt, form) { return elt !== form && !!elt.closest("#segment-builder"); }
  function values(form) {
    var out = {};
    form.querySelectorAll("#segment-builder " + VALUE).forEach(function (input) { out[input.name] = input.value; });
    return out;
  }

  document.addEventListener("htmx:confirm", function (event) {
    var form = builderForm(event.target);
    if (form && form.classList.contains("sb-redrawing")) { event.preventDefault(); }
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt, form = builderForm(elt);
    if (!form || !isRedraw(elt, form)) { return; }
    form.classList.add("sb-redrawing");
    document.getElementById("segment-builder").setAttribute("aria-busy", "true");
    sent = values(form);
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var elt = event.detail.elt, form = builderForm(elt);
    if (!form || !isRedraw(elt, form) || !sent) { return; }
    var typed = {}, now = values(form), active = document.activeElement, name;
    for (name in now) { if (Object.prototype.hasOwnProperty.call(sent, name) && now[name] !== sent[name]) { typed[name] = now[name]; } }
    form.sbTyped = typed;
    form.sbFocus = active && active.name && active.matches && active.matches(VALUE) && form.contains(active) ? active.name : null;
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    // The redraw's button is detached by now (its rows were swapped), so HTMX fires this on the
    // form with detail.elt = the form: the requesting element is requestConfig.elt. While the
    // form is busy every other builder request is dropped, so a request that is not the form's
    // own (a count aborted by the redraw) is the redraw.
    var form = document.querySelector("form.sb-form.sb-redrawing");
    var config = event.detail.requestConfig, elt = (config && config.elt) || event.detail.elt;
    if (!form || elt === form) { return; }
    form.classList.remove("sb-redrawing");
    var builder = document.getElementById("segment-builder");
    if (builder) { builder.removeAttribute("aria-busy"); }
    var typed = form.sbTyped || {}, focus = form.sbFocus, restored = false;
    form.sbTyped = form.sbFocus = sent = null;
    Object.keys(typed).forEach(function (name) {
      var parts = /^c-(\d+)-(.+)$/.exec(name);
      var row = parts && form.querySelector('[data-was="' + parts[1] + '"]');
      var input = row && form.querySelector('[name="c-' + row.id.replace("row-", "") + "-" + parts[2] + '"]');
      if (!input || !input.matches(VALUE)) { return; }
      input.value = typed[name];
      restored = true;
      if (name === focus) { input.focus(); }
    });
    if (restored) { htmx.trigger(form, "change"); }  // count what is there now
  });
})();
