/* The agents' inbox: a socket that says what changed, fragments the server renders, forms sent with fetch.
   Frames: docs/inbox.md ("The inbox socket"). */
(function () {
  "use strict";
  var root = document.getElementById("inbox");
  if (!root) return;
  var queueBox = document.getElementById("queue");
  var pane = document.getElementById("pane");
  var conn = document.getElementById("inbox-conn");
  var watched = root.dataset.conversation || null;
  var sock = null, backoff = 500, heartbeat = null;

  function csrf() {
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function setConn(state, text) { conn.dataset.state = state; conn.textContent = text; }

  function refreshQueue() {
    return fetch(root.dataset.queueUrl, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { queueBox.innerHTML = html; markCurrent(); })
      .catch(function () {});
  }
  function markCurrent() {
    var items = queueBox.querySelectorAll(".queue-item");
    for (var i = 0; i < items.length; i++) {
      var link = items[i].querySelector("a");
      if (items[i].dataset.conversation === watched) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }
  function refreshPane() {
    var url = pane.dataset.paneUrl;
    if (!url) return Promise.resolve();
    return fetch(url, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var draft = pane.querySelector("#reply-text"), note = pane.querySelector("#note-text");
        var keep = [draft ? draft.value : "", note ? note.value : ""];
        pane.innerHTML = html;
        if (pane.querySelector("#reply-text")) pane.querySelector("#reply-text").value = keep[0];
        if (pane.querySelector("#note-text")) pane.querySelector("#note-text").value = keep[1];
        scrollDown();
      })
      .catch(function () {});
  }
  function scrollDown() { var t = pane.querySelector("#timeline"); if (t) t.lastElementChild && t.lastElementChild.scrollIntoView({ block: "end" }); }
  function live() { return pane.querySelector("#live-answer"); }
  function liveText(text, replace) {
    var el = live(); if (!el) return;
    el.hidden = false;
    var p = el.querySelector(".msg-text");
    p.textContent = replace ? text : p.textContent + text;
    scrollDown();
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "inbox": if (watched) send({ type: "watch", conversation: watched }); break;
      case "queue_changed":
        refreshQueue();
        if (frame.conversation_id === watched) refreshPane();
        break;
      case "note_added": if (frame.conversation_id === watched) refreshPane(); break;
      case "conversation_state": case "message_added": case "reply_stored": case "action_decided": refreshPane(); break;
      case "answer_started": refreshPane().then(function () { liveText("", true); }); break;
      case "delta": liveText(frame.text, false); break;
      case "reset": liveText("", true); break;
      case "done": case "error":
        if (frame.code === "not_an_agent") { setConn("closed", "Not an agent"); return; }
        if (frame.type === "done" || frame.message_id) refreshPane();
        break;
    }
  }
  function send(frame) { if (sock && sock.readyState === 1) sock.send(JSON.stringify(frame)); }

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/inbox/";
    sock = new WebSocket(url);
    sock.onopen = function () { backoff = 500; setConn("open", "Online"); };
    sock.onmessage = function (e) { try { onFrame(JSON.parse(e.data)); } catch (err) { /* ignore a bad frame */ } };
    sock.onclose = function (e) {
      setConn("closed", "Offline — reconnecting…");
      if (e.code === 4403) { setConn("closed", "Not an agent"); return; }
      setTimeout(connect, backoff + Math.random() * 250);
      backoff = Math.min(backoff * 2, 10000);
      refreshQueue();
    };
  }
  heartbeat = setInterval(function () { send({ type: "ping" }); }, 60000);

  // Every action form is posted with fetch; the socket then announces the change to every agent.
  pane.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.dataset.action) return;
    event.preventDefault();
    var error = pane.querySelector("#action-error");
    var button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "X-CSRFToken": csrf(), "X-Requested-With": "fetch" }
    }).then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (!res.ok) { error.hidden = false; error.textContent = res.body.message || "That did not work."; return; }
        var text = form.querySelector("textarea"); if (text) text.value = "";
        refreshPane(); refreshQueue();
      })
      .catch(function () { error.hidden = false; error.textContent = "Could not reach the server."; })
      .finally(function () { if (button) button.disabled = false; });
  });
  // "Suggest a reply": a draft from the assistant, put in the reply box for the agent to edit; never sent.
  pane.addEventListener("click", function (event) {
    var button = event.target.closest("#suggest");
    if (!button) return;
    var box = pane.querySelector("#reply-text"), error = pane.querySelector("#action-error");
    button.disabled = true; button.textContent = "Drafting…";
    fetch(button.dataset.suggestUrl, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf(), "X-Requested-With": "fetch" }
    }).then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (!res.ok) { error.hidden = false; error.textContent = res.body.message || "No draft."; return; }
        box.value = res.body.draft; box.focus();
      })
      .catch(function () { error.hidden = false; error.textContent = "Could not reach the server."; })
      .finally(function () { button.disabled = false; button.textContent = "Suggest a reply"; });
  });
  connect();
  markCurrent();
  scrollDown();
})();
