// carealert console: the live countdown and the Now page's refresh. Loaded from /static only
// (the Content-Security-Policy allows no inline script); the pages work without it.
"use strict";
(function () {
  function duration(ms) {
    var minutes = Math.floor(ms / 60000);
    var days = Math.floor(minutes / 1440);
    var hours = Math.floor((minutes % 1440) / 60);
    var mins = minutes % 60;
    if (days) { return hours ? days + " d " + hours + " h" : days + " d"; }
    if (hours) { return mins ? hours + " h " + mins + " min" : hours + " h"; }
    return mins + " min";
  }
  function words(due, now) {
    var left = due - now;
    if (Math.abs(left) < 60000) { return "due now"; }
    return left > 0 ? "in " + duration(left) : "overdue by " + duration(-left);
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (!isNaN(due)) {
        el.textContent = words(due, now);
        var row = el.closest("tr");
        if (row) { row.classList.toggle("overdue", due < now); }
      }
    });
  }
  tick();
  setInterval(tick, 1000);

  var rows = document.getElementById("now-rows");
  if (!rows) { return; }
  var src = rows.getAttribute("data-src");
  var every = Math.max(1, Number(rows.getAttribute("data-every")) || 5) * 1000;
  function refresh() {
    fetch(src, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/login?expired=1"); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null) { rows.innerHTML = html; tick(); }
      })
      .catch(function () { /* the next refresh tries again */ });
  }
  setInterval(refresh, every);
})();
