/* steplens math: render the LaTeX spans made by annotate/rendering.py with the vendored KaTeX. */
(function () {
  "use strict";

  // trust:false keeps \href, \url, \includegraphics and \html* inert; maxSize/maxExpand bound
  // what a hostile formula can do to the page (giant boxes, macro bombs).
  var OPTIONS = { throwOnError: false, trust: false, strict: "ignore", maxSize: 20, maxExpand: 500 };

  var CHUNK = 150;  // formulas laid out per task: a long trace's page is usable before the last one

  function renderSpan(el) {
    var tex = el.textContent;
    var displayMode = el.classList.contains("math-display");
    try {
      window.katex.render(tex, el, Object.assign({ displayMode: displayMode }, OPTIONS));
      el.setAttribute("data-math", "rendered");
    } catch (err) {
      // A formula KaTeX cannot parse stays as its source text, which is still readable.
      el.textContent = tex;
      el.setAttribute("data-math", "failed");
    }
  }

  // The first CHUNK formulas (the top of the page) at once, the rest in later tasks, in page
  // order: 1,000 formulas of a 500-step trace no longer hold the page for a second.
  function renderMath(root) {
    if (!window.katex || !root || !root.querySelectorAll) return;
    var spans = Array.prototype.slice.call(
      root.querySelectorAll(".math-inline:not([data-math]), .math-display:not([data-math])"));
    var i = 0;
    (function chunk() {
      var end = Math.min(spans.length, i + CHUNK);
      for (; i < end; i++) if (!spans[i].hasAttribute("data-math")) renderSpan(spans[i]);
      if (i < spans.length) window.setTimeout(chunk, 0);
    })();
  }

  document.addEventListener("DOMContentLoaded", function () { renderMath(document); });
  document.addEventListener("htmx:afterSwap", function (ev) { renderMath(ev.target); });
  document.addEventListener("htmx:oobAfterSwap", function (ev) { renderMath(ev.target); });
  window.steplensRenderMath = renderMath;
})();
