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
  // Time left of a job whose page polls its progress but that has no
  // start time of its own (an import: the upload waits for its mapping).
  // The first poll seen starts the clock; the pace since gives the time.
  var etaStart = {};
  function updateETAs() {
    document.querySelectorAll("[data-eta-key]").forEach(function (el) {
      var key = el.getAttribute("data-eta-key");
      var done = Number(el.getAttribute("data-eta-done"));
      var total = Number(el.getAttribute("data-eta-total"));
      var now = Date.now();
      var first = etaStart[key];
      if (!first) {
        etaStart[key] = { t: now, done: done };
        return;
      }
      var rate = (done - first.done) / ((now - first.t) / 1000);
      if (!(rate > 0) || total <= done) return;
      var left = (total - done) / rate;
      el.textContent = "about " + (left < 5 ? "a few seconds" : left < 60 ? Math.round(left / 5) * 5 + " s" :
        left < 3600 ? Math.round(left / 60) + " min" : Math.floor(left / 3600) + " h " + Math.round((left % 3600) / 60) + " min") + " left";
    });
  }
  document.addEventListener("DOMContentLoaded", updateETAs);
  document.addEventListener("htmx:afterSettle", updateETAs);
  document.addEventListener("submit", function (e) {
    var f = e.target;
    if (f instanceof HTMLFormElement && f.hasAttribute("data-confirm") && !window.confirm(f.getAttribute("data-confirm"))) {
      e.preventDefault();
    }
  }, true);
})();
