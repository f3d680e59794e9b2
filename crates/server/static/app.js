// Smart Ticket: the little the pages need beyond htmx. Everything works without it.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-insert]");
  if (!button) return;
  var from = document.querySelector(button.getAttribute("data-insert"));
  var into = document.querySelector(button.getAttribute("data-into"));
  if (!from || !into) return;
  var text = from.textContent.trim();
  into.value = into.value ? into.value.replace(/\s*$/, "") + "\n\n" + text : text;
  into.focus();
});
