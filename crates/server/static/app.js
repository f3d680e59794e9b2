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

// Canned responses in the reply box: a button that inserts one remembers which (its use is counted).
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-canned]");
  var id = document.getElementById("canned-id");
  if (button && id) id.value = button.getAttribute("data-canned");
});

// Typing "/" and part of a name at the start of a line lists the matching canned responses; arrow keys
// choose, Enter or Tab inserts (in place of the "/name"), Escape closes.
(function () {
  var box = document.querySelector("[data-canned-picker]");
  if (!box) return;
  var list = document.querySelector(box.getAttribute("data-canned-picker"));
  var items = Array.prototype.slice.call(document.querySelectorAll("#canned-data [data-canned-id]"));
  var shown = [];
  var active = 0;

  function typedName() {
    var before = box.value.slice(0, box.selectionStart);
    var m = /(^|\n)\/([^\n\/]{0,60})$/.exec(before);
    return m ? { name: m[2], start: before.length - m[2].length - 1 } : null;
  }

  function close() {
    list.hidden = true;
    shown = [];
    box.removeAttribute("aria-activedescendant");
  }

  function render() {
    list.textContent = "";
    shown.forEach(function (item, i) {
      var li = document.createElement("li");
      li.setAttribute("role", "option");
      li.id = "canned-option-" + item.getAttribute("data-canned-id");
      li.textContent = item.getAttribute("data-canned-name");
      li.setAttribute("aria-selected", i === active ? "true" : "false");
      li.addEventListener("mousedown", function (e) {
        e.preventDefault();
        active = i;
        choose();
      });
      list.appendChild(li);
    });
    list.hidden = shown.length === 0;
    if (shown.length) box.setAttribute("aria-activedescendant", "canned-option-" + shown[active].getAttribute("data-canned-id"));
  }

  function update() {
    var typed = typedName();
    if (!typed) return close();
    var q = typed.name.toLowerCase();
    shown = items.filter(function (item) {
      return item.getAttribute("data-canned-name").toLowerCase().indexOf(q) !== -1;
    }).slice(0, 8);
    active = 0;
    render();
  }

  function choose() {
    var typed = typedName();
    var item = shown[active];
    if (!typed || !item) return close();
    var text = item.textContent.trim();
    var after = box.value.slice(box.selectionStart);
    box.value = box.value.slice(0, typed.start) + text + after;
    var caret = typed.start + text.length;
    box.setSelectionRange(caret, caret);
    document.getElementById("canned-id").value = item.getAttribute("data-canned-id");
    close();
  }

  box.addEventListener("input", update);
  box.addEventListener("blur", close);
  box.addEventListener("keydown", function (e) {
    if (list.hidden || !shown.length) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      active = (active + (e.key === "ArrowDown" ? 1 : shown.length - 1)) % shown.length;
      render();
    } else if (e.key === "Enter" || e.key === "Tab") {
      e.preventDefault();
      choose();
    } else if (e.key === "Escape") {
      e.preventDefault();
      close();
    }
  });
})();
