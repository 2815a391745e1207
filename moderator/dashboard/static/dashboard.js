// The dashboard's only script (no build step): fills queue texts on demand, auto-submits filters,
// refreshes the overview while "live" is ticked. Texts are set with textContent, never as HTML.
"use strict";
(function () {
  function fillTexts() {
    var cells = document.querySelectorAll("[data-text-for]");
    if (!cells.length) return;
    var ids = Array.prototype.map.call(cells, function (c) { return c.getAttribute("data-text-for"); });
    var query = ids.map(function (id) { return "id=" + encodeURIComponent(id); }).join("&");
    fetch("/api/texts?" + query, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (texts) {
        cells.forEach(function (cell) {
          var t = texts[cell.getAttribute("data-text-for")] || { missing: "not found" };
          cell.textContent = "";
          if (t.missing) { var m = document.createElement("span"); m.className = "muted"; m.textContent = t.missing; cell.appendChild(m); return; }
          if (t.prompt !== undefined) { var p = document.createElement("div"); p.className = "muted"; p.textContent = "Q: " + t.prompt; cell.appendChild(p); }
          var d = document.createElement("div"); d.className = "qtext"; d.textContent = t.text; cell.appendChild(d);
        });
      })
      .catch(function (err) { cells.forEach(function (c) { c.textContent = "text unavailable (" + err.message + ")"; }); });
  }
  function autosubmit() {
    document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () { el.form.submit(); });
    });
  }
  function live() {
    var box = document.getElementById("live");
    if (!box) return;
    box.checked = sessionStorage.getItem("moderator-live") === "1";
    box.addEventListener("change", function () { sessionStorage.setItem("moderator-live", box.checked ? "1" : "0"); });
    setInterval(function () { if (box.checked) location.reload(); }, 1000 * Number(box.getAttribute("data-refresh") || 10));
  }
  document.addEventListener("DOMContentLoaded", function () { fillTexts(); autosubmit(); live(); });
})();
