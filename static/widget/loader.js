/* The support widget's loader, served by /widget/<key>.js with the site's settings as its argument
 * (apps/widget/views.py). Adds a launcher button; opening it loads the chat frame, which runs on the
 * support origin and keeps the visitor's token in its own storage. A signed customer identity is read
 * from data-user-id / data-user-hash on this script tag and handed to the frame in the URL fragment,
 * which never reaches a server log. Where the browser refuses the frame storage of its own (third-party
 * storage blocked), the frame keeps its visitor token here instead, in the host page's storage, through
 * postMessage between the two known origins. No dependencies. */
(function (site) {
  "use strict";
  if (window.__acmeSupportWidget) return;
  window.__acmeSupportWidget = true;

  var script = document.currentScript;
  var userId = (script && script.getAttribute("data-user-id")) || "";
  var userHash = (script && script.getAttribute("data-user-hash")) || "";
  var userExpires = (script && script.getAttribute("data-user-expires")) || "";
  var STRINGS = {
    en: { open: "Chat with us", close: "Close chat" },
    de: { open: "Chatten Sie mit uns", close: "Chat schließen" },
    fr: { open: "Discuter avec nous", close: "Fermer la discussion" }
  };
  var langs = navigator.languages || [navigator.language || "en"];
  var t = STRINGS.en;
  for (var i = 0; i < langs.length; i++) {
    var code = String(langs[i]).slice(0, 2).toLowerCase();
    if (STRINGS[code]) { t = STRINGS[code]; break; }
  }
  var STORE = "acme-support:" + site.key;
  var frameOrigin = new URL(site.frame).origin;
  function saved() {
    try { return JSON.parse(localStorage.getItem(STORE) || "{}") || {}; } catch (e) { return {}; }
  }
  var colour = /^#[0-9a-f]{6}$/i.test(site.colour) ? site.colour : "#1f5fbf";

  function textColour(hex) {  // black or white, whichever reads better on the site's colour
    var n = parseInt(hex.slice(1), 16), r = n >> 16, g = (n >> 8) & 255, b = n & 255;
    return (0.299 * r + 0.587 * g + 0.114 * b) > 150 ? "#111" : "#fff";
  }

  var css =
    ".acme-sw-btn{position:fixed;right:1rem;bottom:1rem;z-index:2147483000;border:0;border-radius:999px;" +
    "padding:.75rem 1.1rem;background:" + colour + ";color:" + textColour(colour) + ";" +
    "font:600 15px system-ui,sans-serif;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.2)}" +
    ".acme-sw-btn:focus-visible,.acme-sw-x:focus-visible{outline:3px solid #f5a623;outline-offset:2px}" +
    ".acme-sw-panel{position:fixed;right:1rem;bottom:4.75rem;z-index:2147483000;width:min(24rem,calc(100vw - 2rem));" +
    "height:min(36rem,calc(100vh - 6rem));background:#fff;border-radius:12px;overflow:hidden;" +
    "box-shadow:0 8px 30px rgba(0,0,0,.25);display:flex;flex-direction:column}" +
    ".acme-sw-panel[hidden]{display:none}" +
    ".acme-sw-x{position:absolute;top:.3rem;right:.4rem;border:0;background:none;color:" + textColour(colour) + ";" +
    "font:22px/1 system-ui,sans-serif;cursor:pointer;padding:.2rem .4rem}" +
    ".acme-sw-panel iframe{flex:1;border:0;width:100%}";

  function init() {
    var style = document.createElement("style");
    style.textContent = css;
    document.head.appendChild(style);

    var launcher = document.createElement("button");
    launcher.type = "button";
    launcher.className = "acme-sw-btn";
    launcher.textContent = t.open;
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-controls", "acme-sw-panel");

    var panel = document.createElement("div");
    panel.id = "acme-sw-panel";
    panel.className = "acme-sw-panel";
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", site.name);
    panel.hidden = true;

    var close = document.createElement("button");
    close.type = "button";
    close.className = "acme-sw-x";
    close.setAttribute("aria-label", t.close);
    close.textContent = "×";
    panel.appendChild(close);

    var frame = null;
    function open() {
      if (!frame) {  // lazily: no websocket (and no visitor) until someone opens the chat
        frame = document.createElement("iframe");
        frame.title = site.name;
        var hash = "#state=" + encodeURIComponent(JSON.stringify(saved()));
        if (userId && userHash) hash += "&uid=" + encodeURIComponent(userId) + "&sig=" + encodeURIComponent(userHash);
        if (userId && userHash && userExpires) hash += "&exp=" + encodeURIComponent(userExpires);
        frame.src = site.frame + hash;
        panel.insertBefore(frame, close);
      }
      panel.hidden = false;
      launcher.setAttribute("aria-expanded", "true");
      frame.focus();
    }
    function hide() {
      panel.hidden = true;
      launcher.setAttribute("aria-expanded", "false");
      launcher.focus();
    }
    launcher.addEventListener("click", function () { if (panel.hidden) open(); else hide(); });
    close.addEventListener("click", hide);
    panel.addEventListener("keydown", function (ev) { if (ev.key === "Escape") hide(); });
    window.addEventListener("message", function (ev) {
      if (!frame || ev.source !== frame.contentWindow || ev.origin !== frameOrigin) return;
      if (ev.data === "acme-support:close") hide();  // Escape pressed inside the frame
      else if (ev.data && ev.data.type === "acme-support:store" && typeof ev.data.name === "string") {
        var state = saved();
        if (ev.data.value === null) delete state[ev.data.name]; else state[ev.data.name] = String(ev.data.value);
        try { localStorage.setItem(STORE, JSON.stringify(state)); } catch (e) { /* storage refused: this page only */ }
      }
    });

    document.body.appendChild(panel);
    document.body.appendChild(launcher);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})
