// Slipway dashboard: progressive enhancement of server-rendered pages.
// Times in the viewer's zone (UTC stays on hover); a deployment's events
// followed live over server-sent events, resuming after the last event seen.
"use strict";

(function () {
  const lang = document.documentElement.lang || "en";

  function localTimes(root) {
    const format = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "medium" });
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      const at = new Date(el.getAttribute("datetime"));
      if (!isNaN(at)) { el.textContent = format.format(at); }
    });
  }

  function setProgress(box, percent) {
    if (!box) { return; }
    const bar = box.querySelector("progress");
    const text = box.querySelector(".pct");
    if (bar) { bar.value = percent; bar.textContent = percent + "%"; }
    if (text) { text.textContent = percent + "%"; }
  }

  function badge(status, text) {
    const span = document.createElement("span");
    span.className = "badge s-" + status;
    span.textContent = text;
    return span;
  }

  function line(e) {
    const li = document.createElement("li");
    li.dataset.seq = String(e.seq);
    const bdi = document.createElement("bdi");
    bdi.dir = "ltr";
    const text = "#" + e.seq + " " + (e.host || "*") + " " + e.stage + " " + e.percent + "% " + e.message;
    bdi.textContent = text.trim();
    li.appendChild(bdi);
    return li;
  }

  // A hook's output line goes to its host's section too.
  function hookLine(e) {
    if (e.kind !== 3 || !e.host || !e.step) { return; }
    const section = document.querySelector('[data-hooks="' + CSS.escape(e.host) + '"]');
    if (!section) { return; }
    const empty = section.querySelector(".empty");
    if (empty) { empty.remove(); }
    const li = document.createElement("li");
    li.dataset.seq = String(e.seq);
    const bdi = document.createElement("bdi");
    bdi.dir = "ltr";
    bdi.textContent = (e.step + (e.output ? " [" + e.output + "]" : "") + " " + e.message).trim();
    li.appendChild(bdi);
    section.querySelector("ol").appendChild(li);
  }

  function applyToHost(e) {
    const row = document.querySelector('#hosts tr[data-host="' + CSS.escape(e.host) + '"]');
    if (!row) { return; }
    // As the record folds events: the status from status events, the
    // stage when one is given, the highest percentage.
    if (e.kind === 1) { row.querySelector(".st").replaceChildren(badge(e.status, e.status_text)); }
    const stage = row.querySelector(".stage bdi");
    if (stage && e.stage) { stage.textContent = e.stage; }
    const box = row.querySelector(".progress");
    const bar = box && box.querySelector("progress");
    if (!bar || e.percent > bar.value) { setProgress(box, e.percent); }
    const sent = row.querySelector(".sent bdi");
    if (sent && e.bytes_sent) { sent.textContent = e.bytes_sent; }
  }

  function refreshRecord(id) {
    fetch("/deployments/" + encodeURIComponent(id), { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        const doc = new DOMParser().parseFromString(html, "text/html");
        ["hosts", "summary"].forEach(function (name) {
          const fresh = doc.getElementById(name);
          const here = document.getElementById(name);
          if (fresh && here) { here.replaceWith(fresh); }
        });
        document.querySelectorAll("form.cancel").forEach(function (f) { f.remove(); });
        localTimes(document);
        document.body.dataset.finished = "true";
      });
  }

  // Follows the log of a deployment page.
  function follow(log) {
    const id = log.dataset.deployment;
    const live = { last: Number(log.dataset.after || "0"), source: null, finished: false };
    const overall = document.querySelector(".summary .progress");
    function open() {
      const source = new EventSource("/deployments/" + encodeURIComponent(id) + "/events?after=" + live.last);
      live.source = source;
      source.addEventListener("deployment", function (msg) {
        const e = JSON.parse(msg.data);
        live.last = e.seq;
        log.appendChild(line(e));
        log.scrollTop = log.scrollHeight;
        hookLine(e);
        if (e.host) { applyToHost(e); } else if (e.kind === 2) { setProgress(overall, e.percent); }
      });
      source.addEventListener("end", function () {
        source.close();
        live.finished = true;
        refreshRecord(id);
      });
    }
    // Drops the connection and opens a new one after the last event seen,
    // as the browser does after a network failure (used by the tests).
    live.drop = function () {
      if (live.source) { live.source.close(); }
      if (!live.finished) { open(); }
    };
    window.slipwayLive = live;
    open();
  }

  // Live progress bars elsewhere (the overview's running deployments).
  function bars() {
    document.querySelectorAll("[data-live]").forEach(function (box) {
      const id = box.dataset.live;
      const after = Number(box.dataset.after || "0");
      const source = new EventSource("/deployments/" + encodeURIComponent(id) + "/events?after=" + after);
      source.addEventListener("deployment", function (msg) {
        const e = JSON.parse(msg.data);
        if (!e.host) { setProgress(box, e.percent); }
      });
      source.addEventListener("end", function () { source.close(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    const log = document.getElementById("log");
    if (log && log.dataset.follow === "true") {
      follow(log);
    } else if (log) {
      // The deployment had ended when the page was rendered: it is whole.
      document.body.dataset.finished = "true";
    } else {
      bars();
    }
  });
})();
