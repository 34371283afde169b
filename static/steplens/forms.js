// Form fields that only some choices of another field use: a widget with
// data-shown-when="format=sft,trl" shows (and submits) only while the form's `format` field
// holds one of those values. Done in the page, so that nothing a person typed is redrawn away.
(function () {
  "use strict";

  function update(form) {
    form.querySelectorAll("[data-shown-when]").forEach(function (widget) {
      var rule = widget.getAttribute("data-shown-when").split("=");
      var control = form.elements[rule[0]];
      var shown = !control || rule[1].split(",").indexOf(control.value) >= 0;
      var box = widget.closest(".field") || widget;
      box.hidden = !shown;
      widget.disabled = !shown;
    });
  }

  function updateAll(root) {
    var forms = Array.prototype.slice.call(root.querySelectorAll("form"));
    if (root.tagName === "FORM") forms.push(root);
    forms.forEach(function (form) {
      if (form.querySelector("[data-shown-when]")) update(form);
    });
  }

  document.addEventListener("change", function (event) {
    var form = event.target && event.target.form;
    if (form && form.querySelector("[data-shown-when]")) update(form);
  });
  document.addEventListener("DOMContentLoaded", function () { updateAll(document); });
  document.addEventListener("htmx:load", function (event) { updateAll(event.target); });
})();
