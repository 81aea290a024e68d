// Keyboard shortcuts of the review inbox (no library; served from the package, never a CDN).
// j/k move the selection, 1-9 press the selected group's numbered label, o out of scope,
// x ignore, l focus the relabel field (Enter submits, Escape leaves it), Enter open the group.
(function () {
  "use strict";
  var rows = function () { return Array.prototype.slice.call(document.querySelectorAll("[data-row]")); };
  var cursor = parseInt(document.body.getAttribute("data-cursor") || "0", 10) || 0;

  function select(i, scroll) {
    var all = rows();
    if (!all.length) { return; }
    cursor = Math.max(0, Math.min(i, all.length - 1));
    all.forEach(function (row, k) {
      row.classList.toggle("selected", k === cursor);
      row.setAttribute("aria-current", k === cursor ? "true" : "false");
    });
    if (scroll) { all[cursor].scrollIntoView({ block: "nearest" }); }
  }

  function press(key) {
    var row = rows()[cursor];
    var target = row && row.querySelector('[data-key="' + key + '"]');
    if (!target) { return false; }
    if (target.tagName === "INPUT") { target.focus(); } else { target.click(); }
    return true;
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    var t = e.target;
    if (t && t.matches && t.matches("input, select, textarea")) {
      if (e.key === "Escape") { t.blur(); }
      return;
    }
    var handled = true;
    if (e.key === "j") { select(cursor + 1, true); }
    else if (e.key === "k") { select(cursor - 1, true); }
    else if (e.key === "Enter") {
      var link = rows()[cursor] && rows()[cursor].querySelector("[data-open]");
      if (link) { link.click(); } else { handled = false; }
    }
    else if (/^[1-9xol]$/.test(e.key)) { handled = press(e.key); }
    else { handled = false; }
    if (handled) { e.preventDefault(); }
  });

  document.addEventListener("click", function (e) {
    var row = e.target.closest && e.target.closest("[data-row]");
    if (row) { select(rows().indexOf(row), false); }
  });

  select(cursor, true);
})();
