function cellValue(row, i) {
  const c = row.children[i]; const v = c.dataset.v !== undefined ? c.dataset.v : c.textContent.trim();
  const n = parseFloat(v); return v === "" ? null : (isNaN(n) || !/^[-+0-9.eE]+$/.test(v) ? v : n);
}
function sortBy(th) {
  const table = th.closest("table"), body = table.tBodies[0], i = [...th.parentNode.children].indexOf(th);
  const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
  table.querySelectorAll("th").forEach(h => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  const rows = [...body.rows];
  rows.sort((a, b) => {  // blanks last either way; ties (as shown) in the table's own order
    const x = cellValue(a, i), y = cellValue(b, i);
    const by = x === null || y === null ? (x === null) - (y === null) :
      (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, {numeric: true})) * dir;
    return by || a.dataset.order - b.dataset.order;
  });
  rows.forEach(r => body.appendChild(r));
}
function applyFilters() {
  const f = document.getElementById("family").value, s = document.getElementById("sparsity").value;
  const m = document.getElementById("method").value.trim().toLowerCase();
  let shown = 0;
  document.querySelectorAll("table.sortable tbody tr").forEach(r => {
    const ref = r.classList.contains("ref");
    const ok = ref || ((!f || r.dataset.family === f) && (!s || r.dataset.sparsity === s)
                       && (!m || r.dataset.method.toLowerCase().includes(m)));
    r.hidden = !ok; shown += ok && !ref;
  });
  document.getElementById("shown").textContent = shown;
}
function openAnchor() {  // a record page opened at a record's anchor unfolds it
  const e = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (e && e.tagName === "DETAILS") { e.open = true; e.scrollIntoView(); }
}
addEventListener("hashchange", openAnchor);
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("table.sortable th").forEach(th => {  // by mouse, or by keyboard: Tab, then Enter
    th.tabIndex = 0; th.addEventListener("click", () => sortBy(th));
    th.addEventListener("keydown", e => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(th); } });
  });
  document.querySelectorAll("table.sortable tbody").forEach(b => [...b.rows].forEach((r, i) => { r.dataset.order = i; }));
  ["family", "sparsity", "method"].forEach(id => {
    const e = document.getElementById(id); if (e) e.addEventListener("input", applyFilters);
  });
  document.querySelectorAll(".filters").forEach(e => { e.hidden = false; });
  if (document.getElementById("family")) applyFilters();
  openAnchor();
});
