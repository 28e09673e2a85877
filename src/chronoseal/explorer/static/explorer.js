// chronoseal explorer: live updates by polling /api/status (served by the app, no network).
// When the cache holds new events the page's <main> is fetched again and swapped in place;
// when the chain node (or the explorer) cannot be reached a banner says so, and the page
// comes back by itself once it answers again.
(function () {
  "use strict";
  var body = document.body;
  var every = parseInt(body.dataset.poll || "2000", 10);
  var live = body.dataset.live === "on";
  var recover = body.dataset.recover === "on";
  var seen = body.dataset.events;
  var down = recover;
  var banner = document.getElementById("live-status");

  function say(text) {
    if (!banner) { return; }
    banner.textContent = text;
    banner.hidden = false;
  }
  function quiet() { if (banner) { banner.hidden = true; banner.textContent = ""; } }

  function swap() {
    return fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (r) {
        if (r.status === 503) { down = true; return null; }
        return r.text();
      })
      .then(function (html) {
        if (html === null) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        ["main", "footer", "header .chain"].forEach(function (sel) {
          var fresh = doc.querySelector(sel);
          var old = document.querySelector(sel);
          if (fresh && old) { old.replaceWith(fresh); }
        });
        seen = doc.body.dataset.events;
        body.dataset.events = seen;
        body.dataset.updated = String(Date.now());
      });
  }

  function tick() {
    fetch("/api/status", { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.chain !== "up") {
          down = true;
          say("The chain node cannot be reached: " + (s.error || "no answer") +
              ". Retrying every " + Math.round(every / 1000) + " s — this page updates when it is back.");
          return null;
        }
        if (down) { window.location.reload(); return null; }
        quiet();
        if (live && String(s.events) !== String(seen)) { return swap(); }
        return null;
      })
      .catch(function () {
        down = true;
        say("The explorer cannot be reached. Retrying every " + Math.round(every / 1000) + " s.");
      })
      .then(function () { window.setTimeout(tick, every); });
  }
  window.setTimeout(tick, every);
})();
