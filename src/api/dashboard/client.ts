// The dashboard's only script: while the page is open and visible, it re-fetches
// the page every `data-refresh` ms and swaps in the part marked `data-live`,
// keeping open <details> open and scrolled boxes (a wide graph, a long
// payload) where they were. No framework, no build.
export const clientScript = `(() => {
  const every = Number(document.body.dataset.refresh) || 2000;
  const status = document.getElementById("live-status");
  let timer;
  const schedule = () => { clearTimeout(timer); timer = setTimeout(refresh, every); };
  async function refresh() {
    const live = document.querySelector("[data-live]");
    if (document.hidden || !live) return schedule();
    try {
      const res = await fetch(location.href, { credentials: "same-origin", headers: { "x-pgpulse-refresh": "1" } });
      if (res.status === 401 || new URL(res.url).pathname !== location.pathname) { location.reload(); return; }
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const next = doc.querySelector("[data-live]");
      if (next) {
        const open = new Set([...live.querySelectorAll("details[open][id]")].map((d) => d.id));
        for (const d of next.querySelectorAll("details[id]")) if (open.has(d.id)) d.open = true;
        const scrolled = [...live.querySelectorAll("[id]")].filter((e) => e.scrollTop || e.scrollLeft).map((e) => [e.id, e.scrollTop, e.scrollLeft]);
        live.replaceWith(next);
        for (const [id, top, left] of scrolled) { const e = document.getElementById(id); if (e) { e.scrollTop = top; e.scrollLeft = left; } }
      }
      if (status) { status.classList.remove("stale"); status.textContent = "live · " + new Date().toLocaleTimeString(); }
    } catch {
      if (status) { status.classList.add("stale"); status.textContent = "offline, retrying"; }
    }
    schedule();
  }
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  schedule();
})();`;
