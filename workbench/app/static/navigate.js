// Page switches inside the open session: a click on a link to another dashboard page
// (`?page=...`, from the navigation, a job id, "open it →") sets the search of Panel's Location
// model, which pushes the URL into the history and tells the server, and the server swaps the
// page in place (workbench/app/server.py, Session). No new document, no scripts loaded again.
// Ctrl/Cmd/Shift-clicks and links to other targets stay ordinary links; Back and Forward load
// the page they land on.
(function () {
  if (window.__wbNavigate) return;
  window.__wbNavigate = true;
  function locationModel() {
    const docs = (window.Bokeh && window.Bokeh.documents) || [];
    for (const doc of docs) {
      for (const model of doc._all_models.values()) {
        if (model.constructor.__module__ === "panel.models.location") return model;
      }
    }
    return null;
  }
  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey ||
        event.altKey) return;
    const link = event.composedPath().find(function (el) { return el instanceof HTMLAnchorElement; });
    if (!link || (link.target && link.target !== "_self")) return;
    const href = link.getAttribute("href") || "";
    if (!href.startsWith("?page=")) return;
    const location = locationModel();
    if (!location) return; // no session yet: an ordinary page load
    event.preventDefault();
    if (location.search === href) return;
    location.search = href;
  }, true);
  window.addEventListener("popstate", function () { window.location.reload(); });
})();
