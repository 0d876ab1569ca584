// Herald's few page behaviours, bound by data attributes: the Content
// Security Policy allows no inline script (no onclick= or <script> blocks
// in the pages), so they live here.
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    var t = e.target instanceof Element ? e.target : null;
    if (!t) return;
    if (t.closest("[data-print]")) {
      window.print();
      return;
    }
    var copy = t.closest("[data-copy-previous]");
    if (copy && copy.previousElementSibling) {
      var value = copy.previousElementSibling.value;
      if (navigator.clipboard) {
        navigator.clipboard.writeText(value);
      }
      copy.textContent = "Copied";
    }
  });
  document.addEventListener("focusin", function (e) {
    var t = e.target;
    if (t instanceof HTMLElement && t.hasAttribute("data-select-on-focus") && typeof t.select === "function") {
      t.select();
    }
  });
  document.addEventListener("submit", function (e) {
    var f = e.target;
    if (f instanceof HTMLFormElement && f.hasAttribute("data-confirm") && !window.confirm(f.getAttribute("data-confirm"))) {
      e.preventDefault();
    }
  }, true);
})();
