// Copy-to-clipboard buttons: <button type="button" class="copy" data-copy="text" hidden>.
// Buttons stay hidden without script (the text can still be selected by hand). A click copies
// data-copy with the Clipboard API; where that is missing or refused (a page served over plain
// HTTP), it selects the text on the page and copies the selection, or asks for Ctrl+C.
// The button reads "Copied" for a moment, and the page's [data-copy-status] region (aria-live)
// says what was copied, for screen readers.
(function () {
  "use strict";

  var RESET_MS = 2000;

  function announce(message) {
    var region = document.querySelector("[data-copy-status]");
    if (!region) return;
    region.textContent = "";
    // a new text node in a live region is what screen readers announce
    window.setTimeout(function () { region.textContent = message; }, 50);
  }

  function show(button, word) {
    var original = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", original);
    button.textContent = word;
    button.classList.add("copied");
    window.clearTimeout(button._copyTimer);
    button._copyTimer = window.setTimeout(function () {
      button.textContent = original;
      button.classList.remove("copied");
    }, RESET_MS);
  }

  // The element beside the button that shows the text (an input holding it, or an element whose
  // text it is): selected where it is; else a scratch textarea off screen.
  function findSource(button, text) {
    var holder = button.parentNode;
    var candidates = holder ? holder.querySelectorAll("input, a, span, h1, code") : [];
    for (var i = 0; i < candidates.length; i++) {
      var node = candidates[i];
      if (node.tagName === "INPUT" ? node.value === text : node.textContent.trim() === text) return node;
    }
    return null;
  }

  function selectText(button, text) {
    var source = findSource(button, text);
    if (source && source.tagName === "INPUT") {
      source.focus();
      source.select();
      return null;
    }
    if (source) {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      return null;
    }
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "copy-scratch";
    document.body.appendChild(area);
    area.select();
    return area;
  }

  function fallback(button, text) {
    var scratch = selectText(button, text);
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    if (scratch) scratch.remove();
    if (copied || scratch) button.focus();  // an input left selected keeps focus, for Ctrl+C
    if (copied) {
      show(button, "Copied");
      announce("Copied " + text);
    } else {
      show(button, "Press Ctrl+C");
      announce("Selected " + text + ": press Control C to copy");
    }
  }

  function copy(button) {
    var text = button.getAttribute("data-copy");
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () {
        show(button, "Copied");
        announce("Copied " + text);
      }, function () {
        fallback(button, text);
      });
    } else {
      fallback(button, text);
    }
  }

  function ready() {
    var buttons = document.querySelectorAll("button[data-copy]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].hidden = false;
    }
    document.addEventListener("click", function (event) {
      var button = event.target.closest && event.target.closest("button[data-copy]");
      if (button) copy(button);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
