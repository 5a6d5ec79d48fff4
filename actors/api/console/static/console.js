// Live updates for the Sikka Supervisor console, without a framework. Pages work without it.
// On a page whose <body> has data-live, every second (while the tab is visible) the page's own
// URL is fetched again and each element marked data-live (by id) is replaced by its new version,
// only when it changed; the focused link keeps its focus. A poll waits for the previous one, so
// a slow server slows the polling instead of piling requests up. Redirected to the login page
// (the session ended): polling stops and says so.
(function () {
  "use strict";
  var POLL_MS = 1000;
  var status = document.getElementById("live-status");

  function say(text, ok) {
    if (!status) { return; }
    status.textContent = text;
    status.className = "live-status " + (ok ? "on" : "off");
  }

  function focusedHref(region) {
    var active = document.activeElement;
    return active && region.contains(active) && active.getAttribute("href");
  }

  function swap(fresh) {
    var regions = document.querySelectorAll("[data-live][id]");
    for (var i = 0; i < regions.length; i++) {
      var old = regions[i];
      var next = fresh.getElementById(old.id);
      if (!next || next.innerHTML === old.innerHTML) { continue; }
      var href = focusedHref(old);
      var adopted = document.importNode(next, true);
      old.replaceWith(adopted);
      if (href) {
        var again = adopted.querySelector('[href="' + CSS.escape(href) + '"]');
        if (again) { again.focus(); }
      }
    }
  }

  function poll() {
    if (document.visibilityState !== "visible") { setTimeout(poll, POLL_MS); return; }
    fetch(window.location.href, { headers: { "X-Console-Live": "1" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.redirected && response.url.indexOf("/ui/login") !== -1) {
          say("session ended: reload to log in again", false);
          return null;
        }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (text) {
        if (text === null) { return; }
        swap(new DOMParser().parseFromString(text, "text/html"));
        say("live · updated " + new Date().toLocaleTimeString(), true);
        setTimeout(poll, POLL_MS);
      })
      .catch(function (error) {
        say("live updates paused (" + error.message + "); retrying", false);
        setTimeout(poll, 5 * POLL_MS);
      });
  }

  if (document.body && document.body.hasAttribute("data-live")) {
    say("live", true);
    setTimeout(poll, POLL_MS);
  }
}());
