// docgw console: the little behaviour beyond htmx. No inline script anywhere (the CSP has no
// 'unsafe-inline'); this file is served by docgw.
"use strict";
document.addEventListener("htmx:configRequest", function (event) {
  // htmx posts carry the session's CSRF token as a header too (forms also carry the field).
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) { event.detail.headers["X-CSRF-Token"] = meta.getAttribute("content"); }
});
document.addEventListener("change", function (event) {
  // "Select all" on the message list ticks every row's box.
  var all = event.target;
  if (all && all.id === "select-all") {
    document.querySelectorAll('input[name="id"]').forEach(function (box) {
      box.checked = all.checked;
    });
  }
});
