/* steplens keyboard module for the labelling page: shortcuts (per project), the focused step, and
   every change (label, flag, note, first-error, all-correct, undo) kept in the browser's storage
   until the server confirms it. Each change is shown at once on its step as pending, sent in
   order with the ones before it, retried with backoff while it fails, and replayed by the next
   page load if the page goes first; the server applies each (client, seq) once. */
(function () {
  "use strict";

  var page = document.getElementById("trace-page");
  var configEl = document.getElementById("labelling-config");
  if (!page || !configEl) return;
  var config = JSON.parse(configEl.textContent);
  var csrf = document.body.getAttribute("data-csrf") || "";
  var reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  var isFirstErrorScheme = config.scheme === "first_error";

  // ---- the steps and their state on the page ---------------------------------------------------

  var rows = Array.prototype.slice.call(document.querySelectorAll(".step"));
  var controls = rows.map(function (row) { return row.querySelector(".step-controls"); });
  var notes = rows.map(function (row) { return row.querySelector("textarea.note"); });
  var current = -1;

  function stateOf(i) {
    var form = controls[i];
    var raw = form.getAttribute("data-value");
    return {
      value: raw === "" || raw === null ? null : Number(raw),
      source: form.getAttribute("data-source") || "hand",
      flagged: form.hasAttribute("data-flagged")
    };
  }

  function setPressed(el, on) { if (el) el.setAttribute("aria-pressed", on ? "true" : "false"); }

  function paint(i, state) {
    var form = controls[i];
    form.setAttribute("data-value", state.value === null ? "" : String(state.value));
    form.setAttribute("data-source", state.source || "hand");
    if (state.flagged) form.setAttribute("data-flagged", ""); else form.removeAttribute("data-flagged");
    form.querySelectorAll("[data-label-value]").forEach(function (b) {
      setPressed(b, state.value !== null && Number(b.getAttribute("data-label-value")) === state.value);
    });
    setPressed(form.querySelector('[data-action="flag"]'), state.flagged);
    var badge = form.querySelector(".value-badge");
    if (badge) badge.textContent = state.value === null ? "·" : (state.value > 0 ? "+1" : String(state.value));
    var filled = form.querySelector(".source-mark");
    if (filled) filled.hidden = !(state.value !== null && state.source === "filled");
  }

  // What the sidebar and the rail show, from the steps' state: one pass over the steps.
  function refreshSummary() {
    var labelled = 0, allPlus = rows.length > 0, firstError = -1;
    for (var i = 0; i < rows.length; i++) {
      var s = stateOf(i);
      if (s.value !== null) labelled += 1;
      if (s.value !== 1) allPlus = false;
      if (s.value === -1 && firstError < 0) firstError = i;
    }
    controls.forEach(function (form, i) { setPressed(form.querySelector('[data-action="first-error"]'), i === firstError); });
    setPressed(document.getElementById("all-correct"), allPlus);
    var count = document.querySelector("#label-status .label-count strong");
    if (count) count.textContent = String(labelled);
    var bar = document.querySelector("#label-status progress");
    if (bar) bar.value = labelled;
    scheduleRail();
  }

  // ---- the change log: localStorage, shared by every tab of this trace ------------------------

  var storeKey = "steplens:changes:" + config.user + ":" + config.trace;
  var memoryBox = null;  // when the browser's storage is refused (private mode, quota)

  function newBox() {
    var id = (window.crypto && window.crypto.randomUUID) ? window.crypto.randomUUID() : String(Math.random()).slice(2);
    return { client: id, seq: 0, changes: [] };
  }
  function load() {
    try {
      var raw = window.localStorage.getItem(storeKey);
      if (raw) return JSON.parse(raw);
    } catch (err) { /* fall through */ }
    return memoryBox || (memoryBox = newBox());
  }
  function store(box) {
    memoryBox = box;
    try { window.localStorage.setItem(storeKey, JSON.stringify(box)); } catch (err) { /* memory only */ }
  }

  // ---- applying a change to the page (the same rules as annotate.services) ---------------------

  function cascadeTarget(i, firstError) {
    if (firstError === null || i < firstError) return { value: 1, source: "filled" };
    if (i === firstError) return { value: -1, source: "first_error" };
    return { value: null, source: "filled" };
  }

  // Returns the indexes whose state changed and, for first-error / all-correct, the hand-set
  // labels they kept.
  function applyLocal(change) {
    var touched = [], kept = [];
    function put(i, next) {
      var before = stateOf(i);
      var after = { value: before.value, source: before.source, flagged: before.flagged };
      if ("value" in next) { after.value = next.value; after.source = next.source || "hand"; }
      if ("flagged" in next) after.flagged = next.flagged;
      if (after.value !== before.value || after.source !== before.source || after.flagged !== before.flagged) {
        paint(i, after);
        touched.push(i);
      }
    }
    if (change.op === "label") {
      if ("value" in change || "flagged" in change) put(change.index, change);
      if ("note" in change) {
        var el = notes[change.index];
        if (el && el.value !== change.note && document.activeElement !== el) el.value = change.note;
        if (touched.indexOf(change.index) < 0) touched.push(change.index);
      }
    } else if (change.op === "first_error" || change.op === "all_correct") {
      var first = change.op === "first_error" ? change.index : null;
      for (var i = 0; i < rows.length; i++) {
        var target = cascadeTarget(i, first);
        var now = stateOf(i);
        if (now.value !== null && now.source === "hand" && target.source !== "first_error") {
          if (now.value !== target.value) kept.push(i);
          continue;
        }
        put(i, target);
      }
    } else if (change.op === "restore") {
      change.labels.forEach(function (row) { put(row.index, row); });
    }
    return { touched: touched, kept: kept };
  }

  // ---- per-step save state: pending / failed / saved, on the step itself ----------------------

  var failedMessage = "";
  function markSteps() {
    var box = load();
    // A refused submit's message goes once nothing is left unsaved.
    if (!box.changes.length && submitError && !submitError.hidden) submitError.hidden = true;
    var pending = {};
    box.changes.forEach(function (c) { (c.touch || []).forEach(function (i) { pending[i] = true; }); });
    rows.forEach(function (row, i) {
      var was = row.getAttribute("data-save") || "";
      var now = pending[i] ? (failedMessage ? "failed" : "pending") : (was === "pending" || was === "failed" ? "saved" : was);
      if (now === was) return;
      row.setAttribute("data-save", now);
      var mark = row.querySelector(".save-state");
      if (mark) {
        mark.textContent = now === "pending" ? "saving…" : now === "failed" ? "not saved" : now === "saved" ? "saved" : "";
        mark.title = now === "failed" ? failedMessage : "";
      }
      if (now === "saved") {
        window.setTimeout(function () {
          if (row.getAttribute("data-save") === "saved") { row.setAttribute("data-save", ""); if (mark) mark.textContent = ""; }
        }, 1500);
      }
    });
    refreshBanner();
  }

  function stepList(indexes) {
    var names = indexes.slice(0, 5).map(function (i) { return String(i + 1); });
    var more = indexes.length > 5 ? " and " + (indexes.length - 5) + " more" : "";
    return (indexes.length === 1 ? "step " : "steps ") + names.join(", ") + more;
  }

  function unsavedSteps() {
    var seen = {}, out = [];
    load().changes.forEach(function (c) {
      (c.touch || []).forEach(function (i) { if (!seen[i]) { seen[i] = true; out.push(i); } });
    });
    return out.sort(function (a, b) { return a - b; });
  }

  var banner = document.getElementById("save-banner");
  var bannerText = document.getElementById("save-banner-text");
  var loginLink = document.getElementById("save-banner-login");
  var retryButton = document.getElementById("save-banner-retry");

  function refreshBanner() {
    if (!banner) return;
    var steps = unsavedSteps();
    var n = load().changes.length;
    var text = "";
    if (blocked === "auth") {
      text = "You were logged out: log in again; your " + n + " unsaved change" + (n === 1 ? "" : "s") +
        " (" + stepList(steps) + ") are kept in this browser and will be sent.";
    } else if (blocked === "gone") {
      text = "This trace can no longer be saved (" + failedMessage + "). Your " + n + " unsaved change" + (n === 1 ? " is" : "s are") + " kept in this browser.";
    } else if (failedMessage && n) {
      text = "Not saved (" + failedMessage + "): " + stepList(steps) + " will be sent again " +
        (retryAt ? "in " + Math.max(1, Math.round((retryAt - Date.now()) / 1000)) + " s" : "soon") + "; they are kept in this browser meanwhile.";
    }
    banner.hidden = !text;
    bannerText.textContent = text;
    if (loginLink) loginLink.hidden = blocked !== "auth";
    if (retryButton) retryButton.hidden = !(failedMessage && !blocked);
  }

  // ---- sending ------------------------------------------------------------------------------

  var inFlight = false;
  var failures = 0;
  var retryAt = 0;
  var timer = null;
  var blocked = null;  // "auth": logged out or the session changed; "gone": 404
  var NOTE_DELAY = 800;
  var BATCH = 200;

  function wire(c) {
    var out = { seq: c.seq, op: c.op };
    ["index", "value", "flagged", "note", "labels"].forEach(function (k) { if (k in c) out[k] = c[k]; });
    return out;
  }

  function schedule(ms) {
    if (timer) window.clearTimeout(timer);
    timer = window.setTimeout(function () { timer = null; pump(); }, Math.max(0, ms));
  }

  function pump(force) {
    if (inFlight || blocked) return;
    var box = load();
    if (!box.changes.length) { markSteps(); return; }
    var now = Date.now();
    if (!force && retryAt > now) { schedule(retryAt - now); return; }
    var batch = [];
    for (var i = 0; i < box.changes.length && batch.length < BATCH; i++) {
      var c = box.changes[i];
      if (!force && c.readyAt && c.readyAt > now) { if (!batch.length) { schedule(c.readyAt - now); return; } break; }
      batch.push(c);
    }
    send(box.client, batch);
  }

  function send(client, batch) {
    inFlight = true;
    // Marked as sent: a note still being typed then gets a new entry instead of changing this one.
    var box = load(), lastSeq = batch[batch.length - 1].seq;
    box.changes.forEach(function (c) { if (c.seq <= lastSeq) c.sent = true; });
    store(box);
    var body = JSON.stringify({ client: client, changes: batch.map(wire) });
    fetch(config.changesUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      redirect: "manual",
      keepalive: body.length < 60000,
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf }
    }).then(function (response) {
      if (response.ok) return response.json().then(function (data) { confirmed(batch, data); });
      if (response.status === 401 || response.status === 403 || response.type === "opaqueredirect") {
        loggedOut(response.status === 403);
      } else if (response.status === 400 && batch.length > 0) {
        return response.json().catch(function () { return {}; }).then(function (data) { refused(batch, data); });
      } else if (response.status === 404) {
        failedMessage = "the trace was not found (404)";
        blocked = "gone";
      } else {
        failed("the server answered " + response.status);
      }
    }).catch(function () {
      failed("the server cannot be reached");
    }).then(function () {
      inFlight = false;
      markSteps();
      if (!blocked) pump();
    });
  }

  function failed(message) {
    failures += 1;
    failedMessage = message;
    var delay = Math.min(30000, 1000 * Math.pow(2, failures - 1));
    retryAt = Date.now() + delay;
    schedule(delay);
    countdown();
  }

  var countdownTimer = null;
  function countdown() {
    if (countdownTimer) return;
    countdownTimer = window.setInterval(function () {
      if (!failedMessage) { window.clearInterval(countdownTimer); countdownTimer = null; return; }
      refreshBanner();
    }, 1000);
  }

  // The server refused a change (a 400): it can never succeed, so it leaves the log, and the
  // step says why. One at a time, to find which change it was.
  function refused(batch, data) {
    if (batch.length > 1) { BATCH = 1; return; }
    var c = batch[0];
    var box = load();
    box.changes = box.changes.filter(function (x) { return x.seq !== c.seq; });
    store(box);
    BATCH = 200;
    var detail = JSON.stringify(data).slice(0, 300);
    showNotice("Step " + ((c.index || 0) + 1) + ": the server refused this change (" + detail + "); reload the page to see what is saved.", true);
  }

  function confirmed(batch, data) {
    failures = 0;
    retryAt = 0;
    failedMessage = "";
    var last = batch[batch.length - 1].seq;
    var box = load();
    box.changes = box.changes.filter(function (c) { return c.seq > last; });
    store(box);
    // What the server has of each note: leaving the page resends only a note changed since.
    batch.forEach(function (c) {
      if ("note" in c && notes[c.index]) notes[c.index].setAttribute("data-saved-note", c.note);
    });
    // The server's state of the steps it touched, then what is still unsent on top of it.
    (data.labels || []).forEach(function (label) {
      var i = label.step_index;
      if (i === undefined || !controls[i]) return;
      paint(i, { value: label.value, source: label.source, flagged: label.flagged });
      var el = notes[i];
      if (el && document.activeElement !== el && el.value !== label.note) el.value = label.note;
    });
    box.changes.forEach(function (c) { applyLocal(c); });
    refreshSummary();
    if (data.kept && data.kept.length && batch.some(function (c) { return c.op === "first_error" || c.op === "all_correct"; })) {
      keptNotice(data.kept);
    }
  }

  // A 403 is often a CSRF token that a log-in in another tab replaced: ask at once who we are
  // (the answer carries a fresh token) and say "logged out" only if we are. A 401: at once.
  function loggedOut(maybeToken) {
    blocked = maybeToken ? "checking" : "auth";
    // Until the session is back (a log-in in this tab after a reload, or in another tab): ask
    // who we are every few seconds, with a fresh CSRF token in the answer.
    var check = function () {
      fetch(config.changesUrl, { credentials: "same-origin", redirect: "manual", headers: { "Accept": "application/json" } })
        .then(function (r) {
          if (!r.ok) { blocked = "auth"; markSteps(); window.setTimeout(check, 5000); return; }
          return r.json().then(function (who) {
            csrf = who.csrf_token || csrf;
            blocked = null;
            failedMessage = "";
            markSteps();
            pump(true);
          });
        })
        .catch(function () { window.setTimeout(check, 5000); });
    };
    window.setTimeout(check, maybeToken ? 0 : 5000);
  }

  // htmx requests of this page (the score panel): an error answer never replaces the page (in
  // DEBUG, django-htmx's handler would put the error page in its place), and a log-in page
  // (a redirect) is never swapped in; both are said in words.
  window.addEventListener("htmx:beforeOnLoad", function (ev) {
    var xhr = ev.detail && ev.detail.xhr;
    if (!xhr) return;
    var toLogin = xhr.responseURL && xhr.responseURL.indexOf(config.loginUrl) >= 0;
    if (xhr.status >= 400 || toLogin) {
      ev.stopPropagation();
      ev.detail.shouldSwap = false;
      if (xhr.status === 401 || xhr.status === 403 || toLogin) { if (!blocked) loggedOut(); markSteps(); }
      else showNotice("The PRM score panel could not be loaded (" + xhr.status + "); your labels are not affected.", true);
    }
  }, true);
  window.addEventListener("htmx:beforeSwap", function (ev) {
    var xhr = ev.detail && ev.detail.xhr;
    if (xhr && xhr.responseURL && xhr.responseURL.indexOf(config.loginUrl) >= 0) ev.detail.shouldSwap = false;
  }, true);

  if (retryButton) retryButton.addEventListener("click", function () { retryAt = 0; pump(true); });
  window.addEventListener("online", function () { retryAt = 0; pump(true); });

  // ---- recording a change -------------------------------------------------------------------

  // The undo history, per user and trace in the browser's storage like the change log (so it
  // survives a reload and is shared by the trace's tabs); read and written at each action,
  // cleared on submit. Each entry holds the states before and after it of the steps it touched.
  var historyKey = "steplens:undo:" + config.user + ":" + config.trace;
  var memoryHistory = null;
  var HISTORY_MAX = 100, HISTORY_MAX_CHARS = 500000;  // a share of the origin's ~5 MB

  function loadHistory() {
    try {
      var raw = window.localStorage.getItem(historyKey);
      if (raw) {
        var h = JSON.parse(raw);
        var fits = function (entry) {
          return entry && entry.before && entry.after && entry.before.concat(entry.after).every(function (s) { return s.index >= 0 && s.index < rows.length; });
        };
        if (h && h.undo && h.redo) return { undo: h.undo.filter(fits), redo: h.redo.filter(fits) };
      }
    } catch (err) { /* fall through */ }
    return memoryHistory || (memoryHistory = { undo: [], redo: [] });
  }
  function storeHistory(h) {
    memoryHistory = h;
    var raw = JSON.stringify(h);
    while (raw.length > HISTORY_MAX_CHARS && h.undo.length + h.redo.length > 1) {
      if (h.undo.length) h.undo.shift(); else h.redo.shift();  // the oldest go first
      raw = JSON.stringify(h);
    }
    try { window.localStorage.setItem(historyKey, raw); } catch (err) { /* memory only */ }
  }
  function clearHistory() {
    memoryHistory = null;
    try { window.localStorage.removeItem(historyKey); } catch (err) { /* nothing kept */ }
  }

  function snapshot(indexes) {
    return indexes.map(function (i) { var s = stateOf(i); return { index: i, value: s.value, source: s.source, flagged: s.flagged }; });
  }

  // Record a change: into the log (before anything else, so a reload right now still has it),
  // onto the page, and onto the undo stack when it is a label action.
  function record(change, opts) {
    opts = opts || {};
    var all = rows.map(function (_, i) { return i; });
    var before = opts.undoable ? snapshot(change.op === "label" ? [change.index] : all) : null;
    var box = load();
    box.seq += 1;
    change.seq = box.seq;
    var result = applyLocal(change);
    change.touch = result.touched.length ? result.touched : ("index" in change ? [change.index] : []);
    if (!result.touched.length && change.op !== "label") { box.seq -= 1; if (result.kept.length) keptNotice(result.kept); return; }
    box.changes.push(change);
    store(box);
    if (opts.undoable && result.touched.length) {
      var byIndex = {};
      before.forEach(function (s) { byIndex[s.index] = s; });
      var was = result.touched.map(function (i) { return byIndex[i]; });
      var history = loadHistory();
      history.undo.push({ before: was, after: snapshot(result.touched), what: opts.undoable });
      if (history.undo.length > HISTORY_MAX) history.undo.shift();
      history.redo = [];
      storeHistory(history);
    }
    if (result.kept.length) keptNotice(result.kept);
    refreshSummary();
    markSteps();
    pump();
  }

  // Undo and redo are changes like any other: saved, retried, replayed.
  function restore(states) {
    var byFlag = states.filter(function (s) { return s.flagged !== stateOf(s.index).flagged; });
    var labels = states.map(function (s) { return { index: s.index, value: s.value, source: s.source }; });
    record({ op: "restore", labels: labels });
    byFlag.forEach(function (s) { record({ op: "label", index: s.index, flagged: s.flagged }); });
  }
  function undo() {
    var history = loadHistory();
    var entry = history.undo.pop();
    if (!entry) { showNotice("Nothing to undo."); return; }
    history.redo.push(entry);
    storeHistory(history);
    restore(entry.before);
    showNotice("Undone: " + entry.what + " (" + stepList(entry.before.map(function (s) { return s.index; })) + "). Redo: " + config.keys.redo + ".");
    setCurrent(entry.before[0].index, { scroll: true });
  }
  function redo() {
    var history = loadHistory();
    var entry = history.redo.pop();
    if (!entry) { showNotice("Nothing to redo."); return; }
    history.undo.push(entry);
    storeHistory(history);
    restore(entry.after);
    showNotice("Redone: " + entry.what + ".");
  }

  var noticeEl = document.getElementById("label-notice");
  function showNotice(text, isError) {
    if (!noticeEl) return;
    noticeEl.textContent = text;
    noticeEl.hidden = !text;
    noticeEl.classList.toggle("is-error", !!isError);
  }
  function keptNotice(kept) {
    showNotice("Kept your own label" + (kept.length === 1 ? " on " : "s on ") + stepList(kept) +
      " (set by hand). Press " + config.keys.undo + " to undo.");
  }

  var NAMES = { "1": "+1", "0": "0", "-1": "−1" };
  // mode "toggle" (a click): pressing the pressed value clears it; mode "set" (a key): never clears.
  function labelValue(i, value, mode) {
    var now = stateOf(i);
    var next = value;
    if (now.value === value && now.source === "hand") {
      if (mode !== "toggle") return false;
      next = null;
    }
    record({ op: "label", index: i, value: next }, { undoable: next === null ? "clear step " + (i + 1) : (NAMES[String(value)] + " on step " + (i + 1)) });
    return true;
  }
  function toggleFlag(i) {
    record({ op: "label", index: i, flagged: !stateOf(i).flagged }, { undoable: "flag on step " + (i + 1) });
  }
  function firstError(i) { record({ op: "first_error", index: i }, { undoable: "first wrong step " + (i + 1) }); }
  function allCorrect() { record({ op: "all_correct" }, { undoable: "all correct" }); }

  // ---- notes: in the log as you type (sent after a pause), at once on Esc / leaving ----------

  function noteChanged(i, immediate) {
    var el = notes[i];
    var box = load();
    var last = null;
    for (var k = box.changes.length - 1; k >= 0; k--) {
      if (box.changes[k].op === "label" && box.changes[k].index === i && "note" in box.changes[k]) { last = box.changes[k]; break; }
    }
    var saved = el.getAttribute("data-saved-note");
    if (last ? last.note === el.value && !immediate : saved === el.value) {
      if (last && immediate && last.readyAt) { last.readyAt = 0; store(box); pump(); }
      return;
    }
    // The unsent note entry of this step is updated in place (it commutes with label changes).
    if (last && !last.sent && last === box.changes[box.changes.length - 1]) {
      last.note = el.value;
      last.readyAt = immediate ? 0 : Date.now() + NOTE_DELAY;
      store(box);
      markSteps();
      schedule(immediate ? 0 : NOTE_DELAY);
      return;
    }
    box.seq += 1;
    box.changes.push({ seq: box.seq, op: "label", index: i, note: el.value, touch: [i], readyAt: immediate ? 0 : Date.now() + NOTE_DELAY });
    store(box);
    markSteps();
    if (immediate) pump(); else schedule(NOTE_DELAY);
  }
  notes.forEach(function (el, i) {
    el.setAttribute("data-saved-note", el.value);
    el.addEventListener("input", function () { noteChanged(i, false); });
    el.addEventListener("change", function () { noteChanged(i, true); });
  });

  // ---- the focused step ---------------------------------------------------------------------

  function setCurrent(i, opts) {
    opts = opts || {};
    if (!rows.length) return null;
    i = Math.max(0, Math.min(rows.length - 1, i));
    if (current >= 0 && rows[current]) { rows[current].classList.remove("is-current"); rows[current].removeAttribute("aria-current"); }
    current = i;
    var el = rows[i];
    el.classList.add("is-current");
    el.setAttribute("aria-current", "step");
    if (opts.focus !== false) el.focus({ preventScroll: true });
    if (opts.scroll !== false) el.scrollIntoView({ block: "nearest", behavior: reduceMotion ? "auto" : "smooth" });
    scheduleRail();
    return el;
  }

  function prmDisagrees(i) {
    var s = stateOf(i);
    if (s.value === null || s.value === 0) return false;
    var badges = rows[i].querySelectorAll(".score-badge");
    for (var k = 0; k < badges.length; k++) {
      var wrong = badges[k].classList.contains("score-wrong");
      if ((s.value === 1 && wrong) || (s.value === -1 && !wrong)) return true;
    }
    return false;
  }

  function jump(test, what) {
    for (var k = 1; k <= rows.length; k++) {
      var i = (current + k) % rows.length;
      if (test(i)) { setCurrent(i); return; }
    }
    showNotice("No " + what + ".");
  }

  // ---- the step rail: every step as a tick (labelled, unlabelled, PRM disagrees, current) ----

  var rail = document.getElementById("step-rail");
  var railTicks = [];
  if (rail) {
    var frag = document.createDocumentFragment();
    rows.forEach(function (_, i) {
      var tick = document.createElement("button");
      tick.type = "button";
      tick.className = "rail-tick";
      tick.tabIndex = -1;
      tick.setAttribute("data-index", String(i));
      tick.setAttribute("aria-label", "Step " + (i + 1));
      frag.appendChild(tick);
      railTicks.push(tick);
    });
    rail.appendChild(frag);
    rail.addEventListener("click", function (ev) {
      var tick = ev.target.closest(".rail-tick");
      if (tick) setCurrent(Number(tick.getAttribute("data-index")));
    });
  }
  var railPending = false;
  function scheduleRail() {
    if (!rail || railPending) return;
    railPending = true;
    window.requestAnimationFrame(function () {
      railPending = false;
      railTicks.forEach(function (tick, i) {
        var s = stateOf(i);
        tick.setAttribute("data-value", s.value === null ? "" : String(s.value));
        tick.classList.toggle("is-disagree", prmDisagrees(i));
        tick.classList.toggle("is-current", i === current);
      });
    });
  }
  document.addEventListener("htmx:oobAfterSwap", scheduleRail);

  // ---- clicks: the label buttons go through the same log as keys ---------------------------

  page.addEventListener("click", function (ev) {
    var button = ev.target.closest && ev.target.closest("button[data-action]");
    var row = ev.target.closest && ev.target.closest(".step");
    if (button) {
      ev.preventDefault();
      var i = row ? rows.indexOf(row) : current;
      var action = button.getAttribute("data-action");
      if (button.hasAttribute("data-label-value")) labelValue(i, Number(button.getAttribute("data-label-value")), "toggle");
      else if (action === "flag") toggleFlag(i);
      else if (action === "first-error") firstError(i);
      else if (action === "all-correct") allCorrect();
    }
    if (row) {
      setCurrent(rows.indexOf(row), { scroll: false, focus: !ev.target.closest("textarea") });
    } else if (button && rows[current]) {
      rows[current].focus({ preventScroll: true });
    }
  });

  // ---- submit: refused while a change is unsaved, naming the steps ---------------------------

  var submitForm = document.getElementById("submit-form");
  var submitError = document.getElementById("submit-pending");
  function refuseSubmit(text) {
    if (!submitError) return;
    submitError.textContent = text;
    submitError.hidden = false;
  }
  if (submitForm) {
    submitForm.addEventListener("submit", function (ev) {
      var n = load().changes.length;
      if (!n) {
        if (submitError) submitError.hidden = true;
        clearHistory();  // the submitted labels start a new history
        return;
      }
      ev.preventDefault();
      var steps = unsavedSteps();
      var which = steps.length ? stepList(steps) : n + " change" + (n === 1 ? "" : "s");
      if (failedMessage || blocked) {
        refuseSubmit("Not submitted: " + which + " not saved yet (" + (failedMessage || "logged out") + "). It is being retried; submit once it is saved.");
        return;
      }
      // Changes on their way (a key pressed just before Enter): said, and sent at once; the
      // message goes when they are saved, and the annotator submits again.
      refuseSubmit("Not submitted: " + which + " still being saved. Submit again once " + (steps.length === 1 || n === 1 ? "it is" : "they are") + " saved.");
      pump(true);
    });
  }

  // ---- keys (per project: config.keys) -----------------------------------------------------------

  var KEYMAP = {};
  Object.keys(config.keys).forEach(function (action) { KEYMAP[config.keys[action]] = action; });
  var ALIASES = { ArrowDown: "next", ArrowUp: "prev", "+": "plus", "-": "minus" };
  if (config.scheme === "ternary") ALIASES["0"] = "zero";
  Object.keys(ALIASES).forEach(function (key) { if (!(key in KEYMAP) && ALIASES[key] in config.keys) KEYMAP[key] = ALIASES[key]; });
  var VALUE_OF = { plus: 1, zero: 0, minus: -1 };

  function toggleHelp() {
    var help = document.getElementById("shortcut-help");
    if (!help) return;
    if (help.open) help.close(); else help.showModal();
  }

  var helpButton = document.getElementById("help-button");
  if (helpButton) helpButton.addEventListener("click", toggleHelp);

  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.isComposing) return;
    var target = ev.target;
    var typing = target.closest && target.closest("textarea, input, select, [contenteditable]");
    if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && (ev.key === "z" || ev.key === "Z") && !typing) {
      ev.preventDefault();
      if (ev.shiftKey) redo(); else undo();
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (typing) {
      if (ev.key === "Escape" && target.matches("textarea.note")) {
        ev.preventDefault();
        target.blur();  // fires "change": the note goes into the log at once
        setCurrent(rows.indexOf(target.closest(".step")), { scroll: false });
      }
      return;
    }
    var help = document.getElementById("shortcut-help");
    if (help && help.open) {
      if (KEYMAP[ev.key] === "help") { ev.preventDefault(); toggleHelp(); }
      return;  // the dialog handles Esc itself
    }
    if (ev.key === "Enter") {
      // Enter on a focused button or link keeps its native meaning.
      if (target.closest && target.closest("button, a, summary")) return;
      ev.preventDefault();
      if (submitForm) submitForm.requestSubmit();
      return;
    }
    var action = KEYMAP[ev.key];
    if (!action) return;
    ev.preventDefault();
    if (current < 0) setCurrent(0, { scroll: false });
    switch (action) {
      case "next": setCurrent(current + 1); break;
      case "prev": setCurrent(current - 1); break;
      case "first_error": firstError(current); break;
      case "all_correct": allCorrect(); break;
      case "flag": toggleFlag(current); break;
      case "undo": undo(); break;
      case "redo": redo(); break;
      case "note": {
        var note = notes[current];
        if (note) { note.focus(); note.scrollIntoView({ block: "nearest" }); }
        break;
      }
      case "reference": {
        var ref = document.getElementById("reference");
        if (ref) ref.open = !ref.open;
        break;
      }
      case "help": toggleHelp(); break;
      case "next_unlabelled": jump(function (i) { return stateOf(i).value === null; }, "unlabelled step"); break;
      case "next_disagreement": jump(prmDisagrees, "step where the PRM disagrees with you"); break;
      default:
        if (action in VALUE_OF && !isFirstErrorScheme) {
          // A key sets (never toggles off) and moves on: one key per step.
          labelValue(current, VALUE_OF[action], "set");
          setCurrent(current + 1);
        }
    }
  });

  // ---- leaving: warn while anything is unsaved; send what is left in one request -------------

  window.addEventListener("beforeunload", function (ev) {
    if (!load().changes.length) return;
    ev.preventDefault();
    ev.returnValue = "";
  });

  function flushOnLeave() {
    notes.forEach(function (el, i) { noteChanged(i, true); });
    var box = load();
    if (!box.changes.length || blocked || inFlight) return;
    // What is left, in one keepalive request that outlives the page; it stays in the log until
    // a page sees it confirmed (the server skips what it already applied).
    send(box.client, box.changes.slice(0, BATCH));
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
    var now = Date.now();
    if ((leaving || document.visibilityState === "visible") && now - lastInteraction < 60000) {
      var delta = Math.min(now - lastTick, 5000) / 1000;
      activeSeconds += delta;
      unsent += delta;
    }
    lastTick = now;
  }
  window.setInterval(function () { accrue(); showClock(); }, 1000);

  // Active time is sent once labelling has started (the first change): a heartbeat would start
  // the annotation, and with it the lease, of a trace that was only looked at.
  function sendHeartbeat(leaving) {
    accrue(leaving);
    if (!config.started && !load().seq) return;
    if (unsent < 0.05 || !config.heartbeatUrl) return;
    var seconds = Math.round(unsent * 100) / 100;
    unsent = 0;
    var body = new FormData();
    body.append("seconds", seconds);
    body.append("csrfmiddlewaretoken", csrf);
    if (leaving) {
      if (!navigator.sendBeacon(config.heartbeatUrl, body)) unsent += seconds;
      return;
    }
    fetch(config.heartbeatUrl, { method: "POST", body: body, credentials: "same-origin", redirect: "manual", headers: { "X-CSRFToken": csrf } })
      .then(function (r) { if (!r.ok) unsent += seconds; })
      .catch(function () { unsent += seconds; });
  }
  window.setInterval(function () { sendHeartbeat(false); }, 15000);

  function leaving() { flushOnLeave(); sendHeartbeat(true); }
  window.addEventListener("pagehide", leaving);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") leaving();
  });

  // ---- changes left in the logs of other traces (a page closed offline, never reopened) ------
  // Sent from whichever trace page opens next, each log in one request; a log leaves the
  // browser's storage only when the server has confirmed it.
  function flushOtherTraces() {
    var prefix = "steplens:changes:" + config.user + ":";
    var keys = [];
    try {
      for (var k = 0; k < window.localStorage.length; k++) {
        var key = window.localStorage.key(k);
        if (key && key.indexOf(prefix) === 0 && key !== storeKey) keys.push(key);
      }
    } catch (err) { return; }
    keys.forEach(function (key) {
      var box;
      try { box = JSON.parse(window.localStorage.getItem(key)); } catch (err) { return; }
      if (!box || !box.changes || !box.changes.length) return;
      var traceId = key.slice(prefix.length);
      var url = config.changesUrl.replace("/traces/" + config.trace + "/", "/traces/" + traceId + "/");
      var batch = box.changes.slice(0, BATCH);
      var last = batch[batch.length - 1].seq;
      fetch(url, {
        method: "POST", credentials: "same-origin", redirect: "manual",
        body: JSON.stringify({ client: box.client, changes: batch.map(wire) }),
        headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf }
      }).then(function (r) {
        if (!r.ok) return;
        var now = JSON.parse(window.localStorage.getItem(key) || "null");
        if (!now) return;
        now.changes = now.changes.filter(function (c) { return c.seq > last; });
        window.localStorage.setItem(key, JSON.stringify(now));
      }).catch(function () { /* kept for the next page */ });
    });
  }

  // ---- start: the log's unsent changes on top of what the server rendered, then send them ----

  (function start() {
    var box = load();
    box.changes.forEach(function (c) { applyLocal(c); });
    refreshSummary();
    markSteps();
    var first = -1;
    for (var i = 0; i < rows.length; i++) { if (stateOf(i).value === null) { first = i; break; } }
    // A deep link (#step-3, from adjudication) opens on that step; else the first unlabelled one.
    // It is scrolled to once the math is laid out (math.js renders on DOMContentLoaded, first),
    // below the sticky header (scroll-margin-top).
    var hash = /^#step-(\d+)$/.exec(window.location.hash);
    if (hash && rows[Number(hash[1])]) {
      setCurrent(Number(hash[1]), { scroll: false });
      document.addEventListener("DOMContentLoaded", function () {
        window.requestAnimationFrame(function () { rows[current].scrollIntoView({ block: "start" }); });
      });
    } else if (rows.length) setCurrent(first < 0 ? 0 : first, { scroll: false });
    page.setAttribute("data-ready", "true");
    window.setTimeout(flushOtherTraces, 1000);
    if (window.performance && performance.mark) performance.mark("steplens:ready");
    pump(true);
  })();
})();
