// "Select all on this page" on the alias list. Without script it is a GET form that reloads the
// page with every box ticked; with script the same button ticks (or clears) the boxes in place.
(function () {
  "use strict";

  function boxes() {
    return document.querySelectorAll("form#bulk input[type=checkbox][name=alias]");
  }

  function label(button, allTicked) {
    button.textContent = allTicked ? "Select none" : "Select all on this page";
  }

  function ready() {
    var button = document.querySelector("button[data-select-all]");
    if (!button) return;
    button.addEventListener("click", function (event) {
      event.preventDefault();
      var all = boxes();
      var allTicked = Array.prototype.every.call(all, function (box) { return box.checked; });
      Array.prototype.forEach.call(all, function (box) { box.checked = !allTicked; });
      label(button, !allTicked);
    });
    document.addEventListener("change", function (event) {
      if (event.target.name !== "alias") return;
      label(button, Array.prototype.every.call(boxes(), function (box) { return box.checked; }));
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
