/* steplens keyboard module for the labelling page: shortcuts, the focused step, notes that are
   never lost (sendBeacon on pagehide) and the active-time heartbeat. The buttons do the work
   (htmx posts); keys only find the right button and click it, so mouse and keyboard share one path. */
(function () {
  "use strict";

  var page = document.getElementById("trace-page");
  if (!page) return;

  var csrf = document.body.getAttribute("data-csrf") || "";
  var scheme = page.getAttribute("data-scheme");
  var heartbeatUrl = page.getAttribute("data-heartbeat-url");
  var reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  var VALUE_KEYS = {
    ternary: { "1": "plus", "+": "plus", "2": "zero", "0": "zero", "3": "minus", "-": "minus" },
    binary: { "1": "plus", "+": "plus", "2": "minus", "-": "minus" },
    first_error: {}
  }[scheme] || {};

  // ---- the focused step ---------------------------------------------------------------------

  function steps() { return Array.prototype.slice.call(document.querySelectorAll(".step")); }
  var current = -1;

  function setCurrent(i, opts) {
    opts = opts || {};
    var all = steps();
    if (!all.length) return null;
    i = Math.max(0, Math.min(all.length - 1, i));
    all.forEach(function (el, j) {
      el.classList.toggle("is-current", j === i);
      if (j === i) el.setAttribute("aria-current", "step"); else el.removeAttribute("aria-current");
    });
    current = i;
    var el = all[i];
    if (opts.focus !== false) el.focus({ preventScroll: true });
    if (opts.scroll !== false) el.scrollIntoView({ block: "nearest", behavior: reduceMotion ? "auto" : "smooth" });
    return el;
  }

  function currentStep() {
    var all = steps();
    if (current < 0 || current >= all.length) return setCurrent(0);
    return all[current];
  }

  function press(root, action, onlyIfNotPressed) {
    var button = root && root.querySelector('[data-action="' + action + '"]');
    if (!button || button.disabled) return false;
    if (onlyIfNotPressed && button.getAttribute("aria-pressed") === "true") return true;
    button.click();
    return true;
  }

  // A click on a step (mouse) makes it the focused step; after a button click the focus goes back
  // to the step, so that Enter submits the trace instead of pressing the same button again.
  document.addEventListener("click", function (ev) {
    var row = ev.target.closest && ev.target.closest(".step");
    if (row) {
      var onNote = ev.target.closest("textarea");
      setCurrent(steps().indexOf(row), { scroll: false, focus: !onNote });
    } else if (ev.target.closest && ev.target.closest("[data-action]")) {
      var step = steps()[current];
      if (step) step.focus({ preventScroll: true }); else ev.target.blur();
    }
  });

  // ---- keys ---------------------------------------------------------------------------------

  function toggleHelp() {
    var help = document.getElementById("shortcut-help");
    if (!help) return;
    if (help.open) help.close(); else help.showModal();
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) return;
    var target = ev.target;
    if (target.closest && target.closest("textarea, input, select, [contenteditable]")) {
      if (ev.key === "Escape" && target.matches("textarea.note")) {
        ev.preventDefault();
        target.blur();  // fires "change": htmx saves the note
        setCurrent(steps().indexOf(target.closest(".step")), { scroll: false });
      }
      return;
    }
    var help = document.getElementById("shortcut-help");
    if (help && help.open) {
      if (ev.key === "?") { ev.preventDefault(); toggleHelp(); }
      return;  // the dialog handles Esc itself
    }
    var handled = true;
    switch (ev.key) {
      case "j": case "ArrowDown": setCurrent(current + 1); break;
      case "k": case "ArrowUp": setCurrent(current < 0 ? 0 : current - 1); break;
      case "e": press(currentStep(), "first-error", true); break;
      case "a": press(document, "all-correct", true); break;
      case "f": press(currentStep(), "flag", false); break;
      case "n": {
        var note = currentStep() && currentStep().querySelector("textarea.note");
        if (note) { note.focus(); note.scrollIntoView({ block: "nearest" }); }
        break;
      }
      case "r": {
        var ref = document.getElementById("reference");
        if (ref) ref.open = !ref.open;
        break;
      }
      case "?": toggleHelp(); break;
      case "Enter": {
        // Enter on a focused button or link keeps its native meaning.
        if (target.closest && target.closest("button, a, summary")) { handled = false; break; }
        var form = document.getElementById("submit-form");
        if (form) form.requestSubmit();
        break;
      }
      default: {
        var action = VALUE_KEYS[ev.key];
        if (!action) { handled = false; break; }
        var row = currentStep();
        // A key sets (never toggles off) and moves on: one key per step.
        if (press(row, action, true)) setCurrent(current + 1);
      }
    }
    if (handled) ev.preventDefault();
  });

  // ---- notes: saved by htmx on change and while typing; flushed by beacon when the tab goes ----

  var savedNotes = new Map();
  document.querySelectorAll("textarea.note").forEach(function (el) { savedNotes.set(el, el.value); });
  document.addEventListener("htmx:beforeRequest", function (ev) {
    var el = ev.detail.elt;
    if (el && el.matches && el.matches("textarea.note")) el.setAttribute("data-sending", el.value);
  });
  document.addEventListener("htmx:afterRequest", function (ev) {
    var el = ev.detail.elt;
    if (el && el.matches && el.matches("textarea.note") && ev.detail.successful) {
      savedNotes.set(el, el.getAttribute("data-sending"));
      el.classList.add("is-saved");
      window.setTimeout(function () { el.classList.remove("is-saved"); }, 1200);
    }
  });

  function beacon(url, fields) {
    var body = new FormData();
    Object.keys(fields).forEach(function (key) { body.append(key, fields[key]); });
    body.append("csrfmiddlewaretoken", csrf);
    return navigator.sendBeacon(url, body);
  }

  function flushNotes() {
    document.querySelectorAll("textarea.note").forEach(function (el) {
      if (savedNotes.get(el) === el.value) return;
      if (beacon(el.getAttribute("hx-post"), { note: el.value })) savedNotes.set(el, el.value);
    });
  }

  // ---- active time: seconds while the page is visible and the annotator acted in the last 60 s --

  var clock = document.getElementById("active-time");
  var activeSeconds = Math.floor(Number(page.getAttribute("data-active-seconds")) || 0);
  var unsent = 0;
  var lastInteraction = Date.now();
  ["keydown", "pointerdown", "pointermove", "wheel", "scroll", "touchstart"].forEach(function (type) {
    window.addEventListener(type, function () { lastInteraction = Date.now(); }, { passive: true, capture: true });
  });

  function showClock() {
    if (!clock) return;
    var h = Math.floor(activeSeconds / 3600), m = Math.floor((activeSeconds % 3600) / 60), s = activeSeconds % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    clock.textContent = (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s);
  }

  window.setInterval(function () {
    if (document.visibilityState === "visible" && Date.now() - lastInteraction < 60000) {
      activeSeconds += 1;
      unsent += 1;
      showClock();
    }
  }, 1000);

  function sendHeartbeat(useBeacon) {
    if (unsent < 1 || !heartbeatUrl) return;
    var seconds = unsent;
    unsent = 0;
    if (useBeacon) {
      if (!beacon(heartbeatUrl, { seconds: seconds })) unsent += seconds;
      return;
    }
    var body = new FormData();
    body.append("seconds", seconds);
    fetch(heartbeatUrl, { method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRFToken": csrf } })
      .then(function (r) { if (!r.ok) unsent += seconds; })
      .catch(function () { unsent += seconds; });
  }
  window.setInterval(function () { sendHeartbeat(false); }, 15000);

  function leaving() { flushNotes(); sendHeartbeat(true); }
  window.addEventListener("pagehide", leaving);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") leaving();
  });

  // Open on the first step not yet labelled (or the first), without scrolling past the problem.
  document.addEventListener("DOMContentLoaded", function () {
    var all = steps();
    var first = all.findIndex(function (el) {
      var controls = el.querySelector(".step-controls");
      return controls && !controls.getAttribute("data-value");
    });
    if (all.length) setCurrent(first < 0 ? 0 : first, { scroll: false });
  });
})();
