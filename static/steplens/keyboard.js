/* steplens keyboard module for the labelling page: shortcuts, the focused step, label posts in
   order, notes that are never lost (sendBeacon on pagehide) and the active-time heartbeat.
   Keys and clicks share one path: the step's own button, posted by htmx through one queue. */
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

  // ---- label posts: one at a time, in the order given ------------------------------------------
  // A cascade ("first wrong step here") re-renders every step, and a fast annotator presses the
  // next key before the last answer is back; so posts go through one queue, and what a toggle
  // sends is decided when it is sent, from the state the previous answer left on the page.

  var queue = Promise.resolve();
  var waiting = [];  // entries queued but not yet sent (flushed by beacon if the page goes)
  var busy = 0;

  function showError(message) {
    var box = document.getElementById("label-error");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
  }

  function send(entry) {
    busy += 1;
    waiting.push(entry);
    queue = queue.then(function () {
      waiting.splice(waiting.indexOf(entry), 1);
      var values = entry.values();
      if (values === null) return null;  // already in that state: nothing to save
      return window.htmx.ajax("POST", entry.url, { source: page, target: page, swap: "none", values: values });
    }).catch(function () {
      showError("Not saved: the server cannot be reached. Check your connection.");
    }).then(function () { busy -= 1; });
    return queue;
  }

  // mode "toggle" (a click): pressing the pressed value clears it; mode "set" (a key): never clears.
  function act(button, mode) {
    if (!button || button.disabled) return false;
    var action = button.getAttribute("data-action");
    var form = button.form;
    var url = button.getAttribute("formaction") || form.getAttribute("action");
    var stepId = form.id;  // e.g. "step-3-controls": looked up again at send time, after earlier swaps
    var saved = function () { return document.getElementById(stepId) || form; };
    var pressedNow = function () {
      var b = saved().querySelector('[data-action="' + action + '"]');
      return b && b.getAttribute("aria-pressed") === "true";
    };
    var values;
    if (button.hasAttribute("data-label-value")) {
      var wanted = button.getAttribute("data-label-value");
      values = function () {
        if (saved().getAttribute("data-value") !== wanted) return { value: wanted };
        return mode === "toggle" ? { value: "" } : null;
      };
    } else if (action === "flag") {
      values = function () { return { flagged: saved().hasAttribute("data-flagged") ? "0" : "1" }; };
    } else {  // first-error, all-correct: idempotent on the server; a key does not repeat them
      values = function () { return mode === "set" && pressedNow() ? null : {}; };
    }
    send({ url: url, values: values });
    return true;
  }

  function press(root, action, mode) {
    return act(root && root.querySelector('[data-action="' + action + '"]'), mode);
  }

  // Clicks on the label buttons go through the same queue (the form posts only without JS). The
  // clicked step becomes the focused step, and focus returns to it so that Enter submits the trace
  // instead of pressing the same button again.
  page.addEventListener("click", function (ev) {
    var button = ev.target.closest && ev.target.closest("button[data-action]");
    if (button) {
      ev.preventDefault();
      act(button, "toggle");
    }
    var row = ev.target.closest && ev.target.closest(".step");
    if (row) {
      setCurrent(steps().indexOf(row), { scroll: false, focus: !ev.target.closest("textarea") });
    } else if (button) {
      var step = steps()[current];
      if (step) step.focus({ preventScroll: true }); else button.blur();
    }
  });

  // Only errors of label and note posts are ours to report (the score panel reports its own).
  function isLabelPost(ev) {
    var elt = ev.detail && ev.detail.elt;
    return elt === page || (elt && elt.matches && elt.matches("textarea.note"));
  }
  document.addEventListener("htmx:responseError", function (ev) {
    if (isLabelPost(ev)) showError("Not saved (" + ev.detail.xhr.status + "): reload the page to see what is saved.");
  });
  document.addEventListener("htmx:sendError", function (ev) {
    if (isLabelPost(ev)) showError("Not saved: the server cannot be reached. Check your connection.");
  });

  // Submit waits for the labels still on their way, so the last key before Enter is never lost.
  var submitForm = document.getElementById("submit-form");
  if (submitForm) {
    submitForm.addEventListener("submit", function (ev) {
      if (busy === 0) return;
      ev.preventDefault();
      queue.then(function () { submitForm.submit(); });
    });
  }

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
      case "e": press(currentStep(), "first-error", "set"); break;
      case "a": press(document, "all-correct", "set"); break;
      case "f": press(currentStep(), "flag", "toggle"); break;
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
        if (press(row, action, "set")) setCurrent(current + 1);
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

  function flushLabels() {
    // Label posts still queued when the page goes: send them now, in order.
    waiting.splice(0).forEach(function (entry) {
      var values = entry.values();
      if (values !== null) beacon(entry.url, values);
    });
  }

  function flushNotes() {
    document.querySelectorAll("textarea.note").forEach(function (el) {
      if (savedNotes.get(el) === el.value) return;
      if (beacon(el.getAttribute("hx-post"), { note: el.value })) savedNotes.set(el, el.value);
    });
  }

  // ---- active time: seconds while the page is visible and the annotator acted in the last 60 s --

  var clock = document.getElementById("active-time");
  var activeSeconds = Number(page.getAttribute("data-active-seconds")) || 0;
  var unsent = 0;
  var lastInteraction = Date.now();
  var lastTick = Date.now();
  ["keydown", "pointerdown", "pointermove", "wheel", "scroll", "touchstart"].forEach(function (type) {
    window.addEventListener(type, function () { lastInteraction = Date.now(); }, { passive: true, capture: true });
  });

  function showClock() {
    if (!clock) return;
    var total = Math.floor(activeSeconds);
    var h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    clock.textContent = (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s);
  }

  // Time since the last tick counts if the page is visible and the annotator acted within 60 s;
  // a gap longer than a few seconds (a sleeping laptop, a throttled tab) counts as a few seconds.
  function accrue(leaving) {
    // When leaving, the page was visible until this moment even if it reports "hidden" already.
    var now = Date.now();
    if ((leaving || document.visibilityState === "visible") && now - lastInteraction < 60000) {
      var delta = Math.min(now - lastTick, 5000) / 1000;
      activeSeconds += delta;
      unsent += delta;
    }
    lastTick = now;
  }
  window.setInterval(function () { accrue(); showClock(); }, 1000);

  function sendHeartbeat(useBeacon) {
    accrue(useBeacon);
    if (unsent < 0.05 || !heartbeatUrl) return;
    var seconds = Math.round(unsent * 100) / 100;
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

  function leaving() { flushLabels(); flushNotes(); sendHeartbeat(true); }
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
