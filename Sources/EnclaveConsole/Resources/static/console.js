// Enclave console: the idle warning. The server enforces the idle timeout; this only warns two
// minutes before and, at expiry, replaces the page with one that shows no PHI.
(function () {
  "use strict";
  var body = document.body;
  if (!body || body.getAttribute("data-signed-in") !== "true") { return; }
  var idle = parseInt(body.getAttribute("data-idle-seconds"), 10);
  if (!(idle > 0)) { return; }
  var warning = document.getElementById("idle-warning");
  var warnAfter = Math.max(idle - 120, Math.floor(idle / 2)) * 1000;
  var warnTimer, expireTimer;
  function expire() { window.location.replace("/signed-out"); }
  function warn() { if (warning) { warning.hidden = false; } }
  function arm() {
    clearTimeout(warnTimer); clearTimeout(expireTimer);
    if (warning) { warning.hidden = true; }
    warnTimer = setTimeout(warn, warnAfter);
    expireTimer = setTimeout(expire, idle * 1000);
  }
  var stay = document.getElementById("stay");
  if (stay) { stay.addEventListener("click", function () { window.location.reload(); }); }
  arm();
})();
