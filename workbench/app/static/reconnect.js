// Server gone: a banner, then a fresh page once the server answers again.
// Bokeh cannot resume a session on a restarted server (its document is gone), so when the
// dashboard's server comes back this reloads the page, which opens a new session.
(function () {
  if (window.__wbReconnect) return;
  window.__wbReconnect = true;
  const here = document.currentScript ? document.currentScript.src : "wb-static/reconnect.js";
  const probe = here.split("?")[0];
  let lost = false;
  let banner = null;
  function show() {
    if (banner) return;
    banner = document.createElement("div");
    banner.className = "wb-offline-banner";
    banner.setAttribute("role", "alert");
    banner.style.cssText = "position:fixed;top:0;left:0;right:0;z-index:10000;background:#c53030;color:#fff;" +
      "font:600 14px system-ui,sans-serif;padding:10px 16px;text-align:center;box-shadow:0 2px 6px rgba(0,0,0,.3)";
    banner.textContent = "The workbench server is not answering. Retrying every 2 s; the page reloads when it is back.";
    document.body.appendChild(banner);
  }
  async function check() {
    try {
      const r = await fetch(probe + "?t=" + Date.now(), { method: "HEAD", cache: "no-store" });
      if (!r.ok) throw new Error(String(r.status));
      if (lost) window.location.reload();
    } catch (e) {
      lost = true;
      show();
    }
  }
  setInterval(check, 2000);
})();
