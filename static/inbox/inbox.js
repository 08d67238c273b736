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
  var sock = null, backoff = 500, heartbeat = null, reconnected = false;

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
  // One change (a claim) announces itself several times (the action's answer, conversation_state,
  // queue_changed): one fetch at a time, one more after it if asked meanwhile, so a late answer never
  // puts back an older pane.
  var paneLoading = null, paneAgain = false;
  var paneShown = null;  // the pane's HTML as last rendered, CSRF tokens left out (they differ per render)
  function refreshPane() {
    var url = pane.dataset.paneUrl;
    if (!url) return Promise.resolve();
    if (paneLoading) { paneAgain = true; return paneLoading; }
    paneLoading = fetch(url, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(showPane)
      .catch(function () {})
      .then(function () {
        paneLoading = null;
        if (paneAgain) { paneAgain = false; return refreshPane(); }
      });
    return paneLoading;
  }
  var TYPED = ["reply-text", "note-text"];
  // Swapping the pane replaces the boxes the agent may be typing in: an unchanged pane is left alone,
  // and a changed one gets back what was typed, the focus and the caret (keystrokes would go nowhere).
  function showPane(html) {
    var comparable = html.replace(/name="csrfmiddlewaretoken" value="[^"]*"/g, "");
    if (comparable !== paneShown) {
      paneShown = comparable;
      var typed = {}, active = document.activeElement;
      var focused = active && active.id && pane.contains(active) ? active.id : "";
      var caret = focused && typeof active.selectionStart === "number" ? [active.selectionStart, active.selectionEnd] : null;
      TYPED.forEach(function (id) { var box = document.getElementById(id); if (box) typed[id] = box.value; });
      pane.innerHTML = html;
      TYPED.forEach(function (id) { var box = document.getElementById(id); if (box && id in typed) box.value = typed[id]; });
      var again = focused && document.getElementById(focused);
      if (again && pane.contains(again)) {
        again.focus();
        if (caret && typeof again.setSelectionRange === "function") again.setSelectionRange(caret[0], caret[1]);
      }
      scrollDown();
    }
    drawLive();  // the answer being written survives the refresh (its text is not in the fragment yet)
  }
  function scrollDown() { var t = pane.querySelector("#timeline"); if (t) t.lastElementChild && t.lastElementChild.scrollIntoView({ block: "end" }); }
  function live() { return pane.querySelector("#live-answer"); }
  // The answer being written in the watched conversation, kept here and drawn into #live-answer, so a
  // refresh of the pane (another frame, an action) does not lose it: its text, its progress lines and
  // its cards — read-only: only the customer decides a card.
  var answer = null;
  function answerStart() { answer = { text: "", steps: [], cards: [] }; }
  function drawLive() {
    var el = live(); if (!el) return;
    el.hidden = !answer;
    if (!answer) return;
    el.querySelector(".msg-text").textContent = answer.text;
    var steps = el.querySelector(".tool-steps"), cards = el.querySelector(".live-cards");
    steps.textContent = ""; cards.textContent = "";
    answer.steps.forEach(function (s) {
      var li = document.createElement("li");
      li.className = "tool-step"; li.dataset.state = s.state; li.dataset.callId = s.callId;
      li.textContent = s.state === "running" ? s.progress : s.progress.replace(/\u2026$/, "") +
        (s.state === "failed" ? ": failed, nothing changed" : ": done");
      steps.appendChild(li);
    });
    answer.cards.forEach(function (c) {
      var card = document.createElement("div");
      card.className = "confirm-card"; card.dataset.actionId = c.actionId; card.dataset.decision = c.decision;
      card.setAttribute("role", "group"); card.setAttribute("aria-label", "Confirmation asked of the customer");
      var summary = document.createElement("p"); summary.className = "confirm-summary"; summary.textContent = c.summary;
      var outcome = document.createElement("p"); outcome.className = "confirm-outcome";
      outcome.textContent = c.decision ? c.message : "Waiting for the customer to confirm or cancel.";
      card.appendChild(summary); card.appendChild(outcome); cards.appendChild(card);
    });
    scrollDown();
  }
  function liveText(text, replace) {
    if (!answer) answerStart();
    answer.text = replace ? text : answer.text + text;
    drawLive();
  }
  function onTool(frame) {
    if (!answer) answerStart();
    if (frame.type === "tool_started") {
      if (!answer.steps.some(function (s) { return s.callId === frame.call_id; }))
        answer.steps.push({ callId: frame.call_id, progress: frame.progress || ("Running " + frame.tool + "\u2026"), state: "running" });
    } else if (frame.type === "tool_finished") {
      answer.steps.forEach(function (s) { if (s.callId === frame.call_id) s.state = frame.is_error ? "failed" : "done"; });
    } else if (!answer.cards.some(function (c) { return c.actionId === frame.action_id; })) {
      answer.cards.push({ actionId: frame.action_id, summary: frame.summary, decision: "", message: "" });
    }
    drawLive();
  }
  function onDecided(frame) {
    if (answer) answer.cards.forEach(function (c) {
      if (c.actionId === frame.action_id) { c.decision = frame.decision; c.message = frame.message; }
    });
    refreshPane();
  }

  function onFrame(frame) {
    switch (frame.type) {
      // Back after a drop: what changed while the socket was away was announced to nobody, so the queue
      // and the pane are read again once the socket follows them (not on the first connect: the page
      // was just rendered, and a swap under the agent's first click would swallow it).
      case "inbox":
        if (watched) send({ type: "watch", conversation: watched });
        if (reconnected) refreshQueue();
        break;
      case "watching": if (reconnected) refreshPane(); break;
      case "queue_changed":
        refreshQueue();
        if (frame.conversation_id === watched) refreshPane();
        break;
      case "note_added": if (frame.conversation_id === watched) refreshPane(); break;
      case "conversation_state": case "message_added": case "customer_seen": refreshPane(); break;
      case "action_decided": onDecided(frame); break;
      case "reply_stored": answer = null; refreshPane(); break;
      case "answer_started": answerStart(); drawLive(); refreshPane(); break;
      case "delta": liveText(frame.text, false); break;
      case "reset": liveText("", true); break;
      case "tool_started": case "tool_finished": case "confirmation_requested": onTool(frame); break;
      case "done": case "error":
        if (frame.code === "not_an_agent") { setConn("closed", "Not an agent"); return; }
        if (frame.type === "done" || frame.message_id) { answer = null; refreshPane(); }
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
      reconnected = true;
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
    var box = form.querySelector("textarea"), sent = box ? box.value : "";
    if (button) button.disabled = true;
    fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "X-CSRFToken": csrf(), "X-Requested-With": "fetch" }
    }).then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (!res.ok) { error.hidden = false; error.textContent = res.body.message || "That did not work."; return; }
        // Empty the box in the pane shown now (it may have been swapped meanwhile, carrying the sent text).
        var now = box && (box.id ? document.getElementById(box.id) : box);
        if (now && now.value === sent) now.value = "";
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
