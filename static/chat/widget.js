/* Embeddable support chat: <script src="/static/chat/widget.js" defer></script> on any page of the site.
 * Adds a "Chat with support" button that opens the chat page (/?embed=1) in a panel. The iframe is
 * same-origin, so the user's session cookie authenticates it; nothing else is shared with the host page. */
(function () {
  "use strict";
  if (window.__acmeChatWidget) return;
  window.__acmeChatWidget = true;

  var script = document.currentScript;
  var origin = script ? new URL(script.src, location.href).origin : location.origin;
  var chatUrl = origin + "/?embed=1";

  var css =
    ".acme-chat-launcher{position:fixed;right:1rem;bottom:1rem;z-index:2147483000;border:0;border-radius:999px;" +
    "padding:.75rem 1.1rem;background:#1f5fbf;color:#fff;font:600 15px system-ui,sans-serif;cursor:pointer;" +
    "box-shadow:0 4px 14px rgba(0,0,0,.2)}" +
    ".acme-chat-launcher:focus-visible{outline:3px solid #9cc0f5;outline-offset:2px}" +
    ".acme-chat-panel{position:fixed;right:1rem;bottom:4.5rem;z-index:2147483000;width:min(24rem,calc(100vw - 2rem));" +
    "height:min(36rem,calc(100vh - 6rem));background:#fff;border:1px solid #d9dee6;border-radius:12px;overflow:hidden;" +
    "box-shadow:0 8px 30px rgba(0,0,0,.25);display:flex;flex-direction:column}" +
    ".acme-chat-panel[hidden]{display:none}" +
    ".acme-chat-head{display:flex;align-items:center;justify-content:space-between;padding:.4rem .75rem;" +
    "font:600 14px system-ui,sans-serif;border-bottom:1px solid #d9dee6}" +
    ".acme-chat-head button{border:0;background:none;font-size:20px;cursor:pointer;line-height:1}" +
    ".acme-chat-panel iframe{flex:1;border:0;width:100%}";

  function init() {
    var style = document.createElement("style");
    style.textContent = css;
    document.head.appendChild(style);

    var launcher = document.createElement("button");
    launcher.type = "button";
    launcher.className = "acme-chat-launcher";
    launcher.textContent = "Chat with support";
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-controls", "acme-chat-panel");

    var panel = document.createElement("div");
    panel.id = "acme-chat-panel";
    panel.className = "acme-chat-panel";
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", "Support chat");
    panel.hidden = true;

    var head = document.createElement("div");
    head.className = "acme-chat-head";
    var title = document.createElement("span");
    title.textContent = "Acme Support";
    var close = document.createElement("button");
    close.type = "button";
    close.setAttribute("aria-label", "Close chat");
    close.textContent = "×";
    head.appendChild(title);
    head.appendChild(close);
    panel.appendChild(head);

    var frame = null;
    function open() {
      if (!frame) {  // load lazily: no websocket until the user opens the chat
        frame = document.createElement("iframe");
        frame.title = "Support chat";
        frame.src = chatUrl;
        panel.appendChild(frame);
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

    document.body.appendChild(panel);
    document.body.appendChild(launcher);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
