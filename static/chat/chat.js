/* Acme support chat: websocket client for docs/protocol.md. Vanilla JS, no build step.
 * Model text is only ever inserted with textContent / text nodes, never innerHTML. */
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var list = $("messages"), input = $("message-input"), form = $("composer");
  var sendBtn = $("send"), stopBtn = $("stop"), handoffBtn = $("handoff");
  var connState = $("conn-state"), notice = $("notice"), convList = $("conversation-list");
  var charCount = $("char-count"), choice = $("choice");
  var maxChars = parseInt(document.currentScript && document.currentScript.dataset.maxChars, 10) || 4000;

  var ws = null;
  var conversationId = new URLSearchParams(location.search).get("c");
  var attempt = 0, reconnectTimer = null;
  var pending = [];          // [{client_id, text, el}] sent but not acknowledged: resent after a reconnect
  var streaming = null;      // {el, textNode, replyId, clientId}
  var replies = {};          // reply id -> assistant bubble awaiting a terminal frame
  // A new conversation may offer "Ask the assistant" / "Talk to a person" (docs/protocol.md, `offer_choice`):
  // the pick rides on its first question as `answerer`.
  var choosing = false, answerer = "";
  var PLACEHOLDER = input.placeholder;

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "10000000-1000-4000-8000-100000000000".replace(/[018]/g, function (c) {
      return (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16);
    });
  }

  function csrfToken() {
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function api(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: body ? JSON.stringify(body) : undefined
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) throw new Error(data.detail || ("HTTP " + r.status));
        return data;
      });
    });
  }

  function setState(state, text) {
    connState.dataset.state = state;
    connState.textContent = text;
  }

  function showNotice(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  function setStreaming(on) {
    stopBtn.hidden = !on;
    sendBtn.disabled = on;
    list.setAttribute("aria-busy", on ? "true" : "false");
  }

  function scrollDown() { list.scrollTop = list.scrollHeight; }

  /* ---- rendering ---- */

  function bubble(role, text, status) {
    var li = document.createElement("li");
    li.className = "msg msg-" + role;
    var who = document.createElement("span");
    who.className = "visually-hidden";
    who.textContent = role === "user" ? "You said: " : "Assistant: ";
    var body = document.createElement("p");
    body.className = "msg-text";
    var node = document.createTextNode(text || "");
    body.appendChild(node);
    li.appendChild(who);
    li.appendChild(body);
    li._text = node;
    if (status) li.dataset.status = status;
    list.appendChild(li);
    scrollDown();
    return li;
  }

  function setStatusNote(li, text) {
    var note = li.querySelector(".msg-note");
    if (!note) {
      note = document.createElement("p");
      note.className = "msg-note";
      li.appendChild(note);
    }
    note.textContent = text;
  }

  function addFeedback(li, messageId, current) {
    if (li.querySelector(".feedback")) return;
    var fb = $("feedback-template").content.firstElementChild.cloneNode(true);
    var buttons = fb.querySelectorAll(".fb");
    var commentForm = fb.querySelector(".fb-comment");
    var rating = current || null;
    function mark() {
      buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.rating === rating)); });
    }
    function save(comment) {
      return api("PUT", "/api/messages/" + messageId + "/feedback/", { rating: rating, comment: comment || "" });
    }
    buttons.forEach(function (b) {
      b.addEventListener("click", function () {
        rating = b.dataset.rating;
        mark();
        save("").then(function () {
          commentForm.hidden = false;
        }, function (e) { showNotice("Could not save your rating: " + e.message); });
      });
    });
    commentForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      save(commentForm.elements.comment.value).then(function () {
        commentForm.hidden = true;
        setStatusNote(li, "Thanks for your feedback.");
      }, function (e) { showNotice("Could not save your comment: " + e.message); });
    });
    mark();
    li.appendChild(fb);
  }

  var STATUS_NOTES = {
    incomplete: "The answer was cut short.",
    stopped: "Stopped.",
    failed: "The assistant could not answer. Please try again."
  };

  function finishBubble(li, frame) {
    li.dataset.status = frame.status;
    li.dataset.messageId = frame.message_id;
    if (frame.status === "degraded") {
      setStatusNote(li, "A support agent will follow up" + (frame.ticket_id ? " (ticket #" + frame.ticket_id + ")." : "."));
    } else if (STATUS_NOTES[frame.status]) {
      setStatusNote(li, STATUS_NOTES[frame.status]);
    }
    if (frame.status !== "failed" && li._text.data) addFeedback(li, frame.message_id, null);
    if (frame.sources && frame.sources.length) addSources(li, frame.sources);
  }

  // The help-centre articles the answer cited, as links under it (text only when one has no URL).
  function addSources(li, sources) {
    var old = li.querySelector(".sources");
    if (old) old.remove();
    var box = document.createElement("div");
    box.className = "sources";
    box.appendChild(document.createTextNode("Sources: "));
    var ul = document.createElement("ul");
    sources.forEach(function (s) {
      var item = document.createElement("li");
      if (/^https?:\/\//.test(s.url || "")) {
        var a = document.createElement("a");
        a.href = s.url;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        a.textContent = s.title || s.url;
        item.appendChild(a);
      } else {
        item.textContent = s.title;
      }
      ul.appendChild(item);
    });
    box.appendChild(ul);
    li.appendChild(box);
  }

  /* ---- tools: progress lines and confirmation cards (docs/protocol.md, "Tools") ---- */

  // Shown above the answer's text, in the bubble of the answer they belong to.
  function toolBox(li) {
    var box = li.querySelector(".tool-steps");
    if (!box) {
      box = document.createElement("ul");
      box.className = "tool-steps";
      box.setAttribute("aria-live", "polite");
      li.insertBefore(box, li.querySelector(".msg-text"));
    }
    return box;
  }

  function replyBubble(messageId) {
    return replies[messageId] || (streaming && streaming.el);
  }

  function addCard(li, f) {
    if (document.querySelector('.confirm-card[data-action-id="' + f.action_id + '"]')) return;  // shown already
    var card = document.createElement("div");
    card.className = "confirm-card";
    card.dataset.actionId = f.action_id;
    card.setAttribute("role", "group");
    card.setAttribute("aria-label", "Confirm this action");
    var summary = document.createElement("p");
    summary.className = "confirm-summary";
    summary.textContent = f.summary;
    var buttons = document.createElement("div");
    buttons.className = "confirm-buttons";
    [["Confirm", true], ["Cancel", false]].forEach(function (choice) {
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = choice[0];
      b.className = choice[1] ? "confirm-yes" : "confirm-no";
      b.addEventListener("click", function () {
        if (send({ type: "decision", action_id: f.action_id, confirm: choice[1] })) {
          buttons.querySelectorAll("button").forEach(function (x) { x.disabled = true; });
        } else {
          showNotice("Not connected: try again in a moment.");
        }
      });
      buttons.appendChild(b);
    });
    card.appendChild(summary);
    card.appendChild(buttons);
    li.insertBefore(card, li.querySelector(".msg-text"));
    scrollDown();
  }

  // A call stored with an earlier answer: its progress line, and its card (still open, or decided).
  function renderStoredAction(li, act) {
    handlers.tool_started({ message_id: null, call_id: act.call_id, tool: act.tool, progress: act.progress }, li);
    handlers.tool_finished({ message_id: null, call_id: act.call_id, is_error: act.status === "failed" || act.status === "rejected" }, li);
    if (act.summary) {
      addCard(li, act);
      if (act.decision) handlers.action_decided({ action_id: act.action_id, decision: act.decision, message: act.message });
    }
  }

  function renderHistory(messages) {
    list.textContent = "";
    replies = {};
    streaming = null;
    messages.forEach(function (m) {
      var li = bubble(m.role, m.text, m.status);
      li.dataset.messageId = m.id;
      if (m.role === "assistant") {
        if (m.action_id) {
          li.classList.add("msg-action-outcome");   // what came of a card: not the model's, no feedback
        } else if (m.status === "streaming") {
          replies[m.id] = li;
          streaming = { el: li, replyId: m.id, clientId: null };
          li.classList.add("is-streaming");
          // Its calls so far (an answer written by another server process sends only the later ones).
          (m.actions || []).forEach(function (act) { renderStoredAction(li, act); });
        } else {
          (m.actions || []).forEach(function (act) { renderStoredAction(li, act); });
          finishBubble(li, { status: m.status, message_id: m.id, sources: m.sources });
          if (m.feedback) addFeedback(li, m.id, m.feedback);
          if (m.feedback) li.querySelectorAll(".fb").forEach(function (b) {
            b.setAttribute("aria-pressed", String(b.dataset.rating === m.feedback));
          });
        }
      }
    });
    setStreaming(!!streaming);
  }

  /* ---- protocol ---- */

  var handlers = {
    conversation: function (f) {
      conversationId = f.id;
      history.replaceState(null, "", "?c=" + encodeURIComponent(f.id) + (document.body.classList.contains("embedded") ? "&embed=1" : ""));
      if (f.messages) {
        var stored = {};
        f.messages.forEach(function (m) { if (m.client_id) stored[m.client_id] = true; });
        pending = pending.filter(function (p) { return !stored[p.client_id]; });
        renderHistory(f.messages);
      }
      pending.forEach(function (p) {       // never acknowledged: resend (the server deduplicates by client_id)
        if (!p.el.isConnected) list.appendChild(p.el);
        send(messageFrame(p));
      });
      handoffBtn.hidden = !!f.humans_answer;  // people answer already
      choosing = !!f.offer_choice && !list.children.length;
      showChoice(choosing && !answerer);
      markActive();
    },
    ack: function (f) {
      var p = pending.filter(function (x) { return x.client_id === f.client_id; })[0];
      pending = pending.filter(function (x) { return x !== p; });
      if (p) { p.el.dataset.messageId = f.message_id; p.el.classList.remove("is-pending"); }
      if (!f.reply_id && !f.duplicate) loadConversations();  // for a person: no `done` will list it
      if (f.reply_id && !replies[f.reply_id]) {
        var li = bubble("assistant", "", "streaming");
        li.classList.add("is-streaming");
        replies[f.reply_id] = li;
        streaming = { el: li, replyId: f.reply_id, clientId: f.client_id };
        setStreaming(true);
      }
    },
    conversation_state: function (f) {    // a person joined, handed back, or the request waits for one
      if (f.notice) showNotice(f.notice);
      input.placeholder = f.humans_answer ? "Write to our support team…" : PLACEHOLDER;
      handoffBtn.hidden = !!f.humans_answer;
    },
    message_added: function (f) {         // a support agent's message, or a question sent from another tab
      var m = f.message || {};
      if (m.id && list.querySelector('[data-message-id="' + m.id + '"]')) return;  // shown already (transcript)
      if (m.role === "agent") {
        var li = bubble("agent", m.text || "", "complete");
        li.dataset.messageId = m.id;
        li.querySelector(".visually-hidden").textContent = (m.author || "Support") + " said: ";
        li.dataset.author = m.author || "";
      } else if (m.role === "user") {
        bubble("user", m.text || "", "complete").dataset.messageId = m.id;
      }
    },
    answer_started: function (f) {        // asked in another tab (or by the page before a reload)
      if (replies[f.reply_id]) return;
      var q = f.question || {};
      var mine = q.client_id && pending.some(function (x) { return x.client_id === q.client_id; });
      if (!mine) bubble("user", q.text || "", "complete").dataset.messageId = q.id;
      var li = bubble("assistant", "", "streaming");
      li.classList.add("is-streaming");
      replies[f.reply_id] = li;
      streaming = { el: li, replyId: f.reply_id, clientId: q.client_id || null };
      setStreaming(true);
    },
    tool_started: function (f, into) {
      var li = into || replyBubble(f.message_id);
      if (!li) return;
      var known = toolBox(li).querySelectorAll(".tool-step");
      for (var i = 0; i < known.length; i++) if (known[i].dataset.callId === f.call_id) return;  // shown already
      var step = document.createElement("li");
      step.className = "tool-step";
      step.dataset.callId = f.call_id;
      step.dataset.state = "running";
      step.textContent = f.progress || ("Running " + f.tool + "\u2026");
      toolBox(li).appendChild(step);
      scrollDown();
    },
    tool_finished: function (f, into) {
      var li = into || replyBubble(f.message_id);
      if (!li) return;
      toolBox(li).querySelectorAll(".tool-step").forEach(function (step) {
        if (step.dataset.callId !== f.call_id || step.dataset.state !== "running") return;
        step.dataset.state = f.is_error ? "failed" : "done";
        step.textContent = step.textContent.replace(/\u2026$/, "") + (f.is_error ? ": failed, nothing changed" : ": done");
      });
    },
    confirmation_requested: function (f) {
      var li = replyBubble(f.message_id);
      if (li) addCard(li, f);
    },
    action_decided: function (f) {
      document.querySelectorAll(".confirm-card").forEach(function (card) {
        if (card.dataset.actionId !== String(f.action_id)) return;
        card.dataset.decision = f.decision;
        var buttons = card.querySelector(".confirm-buttons");
        if (buttons) buttons.remove();
        var outcome = card.querySelector(".confirm-outcome") || document.createElement("p");
        outcome.className = "confirm-outcome";
        outcome.textContent = f.message;
        card.appendChild(outcome);
      });
      // The assistant's line saying what came of it (stored: the transcript shows the same line).
      var said = f.outcome;
      if (said && !list.querySelector('[data-message-id="' + said.id + '"]')) {
        var li = bubble("assistant", said.text, "complete");
        li.dataset.messageId = said.id;
        li.classList.add("msg-action-outcome");
      }
    },
    retrying: function () {
      // Overload: the server waits for capacity (up to its retry budget) instead of failing at once.
      if (streaming) setStatusNote(streaming.el, "The assistant is busy right now. Retrying\u2026");
    },
    delta: function (f) {
      if (!streaming) return;
      var note = streaming.el.querySelector(".msg-note");
      if (note) note.remove();
      streaming.el._text.appendData(f.text);
      scrollDown();
    },
    reset: function () {
      if (streaming) streaming.el._text.data = "";
    },
    done: function (f) {
      var li = replies[f.message_id] || (streaming && streaming.el);
      if (li) {
        li.classList.remove("is-streaming");
        finishBubble(li, f);
        delete replies[f.message_id];
      }
      if (!streaming || streaming.el === li) { streaming = null; setStreaming(false); }
      loadConversations();
    },
    error: function (f) {
      if (f.code === "unauthenticated") { toLogin(); return; }
      if (f.code === "already_decided" && f.action_id) {   // decided in another tab: the card shows it
        handlers.action_decided({ action_id: f.action_id, decision: f.decision, message: f.message });
      } else if (f.code === "already_decided" || f.code === "not_awaiting_confirmation") {
        document.querySelectorAll(".confirm-card button").forEach(function (b) { b.disabled = false; });
      }
      if (f.code === "choice_unavailable") { choosing = false; answerer = ""; showChoice(false); }
      if (f.code === "conversation_not_found") { conversationId = null; showNotice("That conversation was not found; starting a new one."); return; }
      if (f.message_id && replies[f.message_id]) {          // the answer to a stored question failed
        var li = replies[f.message_id];
        li.classList.remove("is-streaming");
        finishBubble(li, { status: "failed", message_id: f.message_id });
        delete replies[f.message_id];
        streaming = null;
        setStreaming(false);
        return;
      }
      if (f.client_id) {                                    // the question itself was refused
        var p = pending.filter(function (x) { return x.client_id === f.client_id; })[0];
        if (p) {
          pending = pending.filter(function (x) { return x !== p; });
          if (p.answerer && f.code !== "choice_unavailable") choosing = true;  // the pick stays for the retry
          p.el.classList.remove("is-pending");
          setStatusNote(p.el, "Not sent: " + f.message);
          if (f.code !== "busy") input.value = input.value || p.text;
        }
      }
      showNotice(f.message || f.code);
    }
  };

  function messageFrame(p) {
    var frame = { type: "message", text: p.text, client_id: p.client_id };
    if (p.answerer) frame.answerer = p.answerer;
    return frame;
  }

  function showChoice(on) {
    choice.hidden = !on;
  }

  function choose(who) {
    answerer = who;
    showChoice(false);
    input.placeholder = who === "person" ? "Write to our support team…" : PLACEHOLDER;
    showNotice(who === "person" ? "Your message will go to a person from our support team." : "");
    input.focus();
  }

  function send(frame) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(frame)); return true; }
    return false;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/chat/" +
      (conversationId ? "?conversation=" + encodeURIComponent(conversationId) : "");
    setState("connecting", attempt ? "Reconnecting…" : "Connecting…");
    var sock = new WebSocket(url);
    ws = sock;
    sock.onopen = function () { attempt = 0; setState("open", "Connected"); };
    sock.onmessage = function (ev) {
      var frame;
      try { frame = JSON.parse(ev.data); } catch (e) { return; }
      if (sock === ws && handlers[frame.type]) handlers[frame.type](frame);
    };
    sock.onclose = function (ev) {
      if (sock !== ws) return;      // replaced on purpose (switched conversation)
      if (ev.code === 4401) { toLogin(); return; }
      if (ev.code === 4404) conversationId = null;
      if (streaming) { streaming.el.classList.remove("is-streaming"); }
      setStreaming(false);
      // Exponential backoff with jitter, capped, so a restarted server is not stampeded.
      var delay = Math.min(10000, 500 * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
      attempt += 1;
      setState("closed", "Disconnected. Reconnecting in " + Math.ceil(delay / 1000) + " s…");
      reconnectTimer = setTimeout(connect, delay);
    };
  }

  function switchTo(id) {
    var old = ws;
    ws = null;
    if (old) old.close(1000);
    conversationId = id;
    pending = [];
    choosing = false;
    answerer = "";
    input.placeholder = PLACEHOLDER;
    showChoice(false);
    list.textContent = "";
    streaming = null;
    replies = {};
    setStreaming(false);
    showNotice("");
    attempt = 0;
    connect();
  }

  /* ---- composer ---- */

  function submit() {
    var text = input.value.trim();
    if (!text || streaming) return;
    if (text.length > maxChars) { showNotice("Your message is longer than " + maxChars + " characters."); return; }
    var p = { client_id: uuid(), text: text, el: bubble("user", text, "pending") };
    if (choosing) {                     // the conversation's first question carries the customer's pick
      p.answerer = answerer;
      choosing = false;
      showChoice(false);
    }
    p.el.classList.add("is-pending");
    pending.push(p);
    input.value = "";
    updateCount();
    if (p.answerer !== "person") showNotice("");
    if (!send(messageFrame(p))) {
      setStatusNote(p.el, "Waiting for the connection…");
    }
  }

  function updateCount() {
    var n = input.value.length;
    charCount.textContent = n > maxChars * 0.8 ? n + " / " + maxChars : "";
  }

  form.addEventListener("submit", function (ev) { ev.preventDefault(); submit(); });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); submit(); }
  });
  input.addEventListener("input", updateCount);
  choice.querySelectorAll("button").forEach(function (b) {
    b.addEventListener("click", function () { choose(b.dataset.answerer); });
  });
  stopBtn.addEventListener("click", function () { send({ type: "stop" }); input.focus(); });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && streaming) send({ type: "stop" });
  });
  handoffBtn.addEventListener("click", function () {
    if (!conversationId) return;
    api("POST", "/api/conversations/" + conversationId + "/handoff/").then(function (d) {
      showNotice("A human agent will contact you (ticket #" + d.ticket_id + ").");
    }, function (e) {
      showNotice(/not found/i.test(e.message) ? "Ask a question first, then we can hand it to a human." : "Could not reach a human: " + e.message);
    });
  });
  $("new-conversation").addEventListener("click", function () { switchTo(null); history.replaceState(null, "", "/"); input.focus(); });

  /* ---- history sidebar ---- */

  function markActive() {
    convList.querySelectorAll("button").forEach(function (b) {
      if (b.dataset.id === conversationId) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    });
  }

  function loadConversations() {
    if (document.body.classList.contains("embedded")) return;
    api("GET", "/api/conversations/?limit=50").then(function (data) {
      convList.textContent = "";
      (data.results || []).forEach(function (c) {
        var li = document.createElement("li");
        var b = document.createElement("button");
        b.type = "button";
        b.dataset.id = c.id;
        b.textContent = c.title || "Untitled conversation";
        if (c.status === "needs_human") b.title = "Waiting for a human agent";
        b.addEventListener("click", function () { if (c.id !== conversationId) switchTo(c.id); });
        li.appendChild(b);
        convList.appendChild(li);
      });
      markActive();
    }, function () {});
  }

  /* ---- logged out (session ended, expired or logged out in another tab) ---- */

  // What was typed or sent but not acknowledged goes back into the box after the login, in this tab.
  var UNSENT = "supportbot.unsent";
  function toLogin() {
    var texts = pending.map(function (p) { return p.text; });
    if (input.value.trim()) texts.push(input.value.trim());
    try { if (texts.length) sessionStorage.setItem(UNSENT, texts.join("\n\n")); } catch (e) { /* storage off */ }
    location.href = "/accounts/login/?next=" + encodeURIComponent("/" + (conversationId ? "?c=" + conversationId : ""));
  }
  try {
    var unsent = sessionStorage.getItem(UNSENT);
    if (unsent) {
      sessionStorage.removeItem(UNSENT);
      input.value = unsent;
      updateCount();
      showNotice("Your message was not sent before you were logged out: it is back in the box.");
    }
  } catch (e) { /* storage off */ }

  connect();
  loadConversations();
})();
