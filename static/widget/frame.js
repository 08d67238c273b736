/* The chat frame on the support origin (templates/widget/frame.html): one websocket, /ws/widget/<key>/
 * (docs/widget.md, frames as in docs/protocol.md). The visitor token and the open conversation are kept
 * in this frame's own storage, so a reload resumes the same chat; where the browser refuses a framed
 * page storage of its own, the loader keeps them in the host page's storage (handed over in the URL
 * fragment, saved back by postMessage to the site's origin only). No dependencies. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("w-config").textContent);
  var STRINGS = {
    en: { label: "Your message", send: "Send", placeholder: "Ask us anything…", connecting: "Connecting…",
      online: "Online", offline: "Reconnecting…", email: "Email for a reply (optional)",
      leaveText: "Your message for our team", leaveSend: "Leave a message", leaveOpen: "Or leave a message and your email for our team", left: "Thanks! Our team will get back to you.",
      failed: "The assistant could not answer. Please try again.", retrying: "The assistant is busy right now. Retrying…", gone: "This chat is not available here.",
      guest: "We could not confirm your sign-in, so you are chatting as a guest. Reload the page to try again.",
      choice: "Who would you like to answer you?", ask: "Ask the assistant", person: "Talk to a person", human: "Talk to a human",
      toTeam: "Your message will go to a person from our team.", team: "Write to our support team…", support: "Support",
      agent_joined: "{a} from {c} joined.", handed_back: "You're back with the assistant.",
      resolved: "This conversation was marked resolved. Write again any time.",
      waitNow: "A person from our team will join shortly. Your messages now go to them.",
      waitOffline: "No one from our team is online right now. We keep your request and will answer here and by email.",
      waitAway: "Our team is away; they are back {t}. We keep your request and will answer here and by email.",
      askEmail: "Leave your email so we can answer you there too.", emailSend: "Send my email", emailLeft: "Thanks! We will answer you here and by email.",
      followUp: "A person from our team will follow up here." },
    de: { label: "Ihre Nachricht", send: "Senden", placeholder: "Fragen Sie uns…", connecting: "Verbinde…",
      online: "Online", offline: "Verbindung wird wiederhergestellt…", email: "E-Mail für eine Antwort (optional)",
      leaveText: "Ihre Nachricht an unser Team", leaveSend: "Nachricht hinterlassen", leaveOpen: "Oder hinterlassen Sie unserem Team eine Nachricht und Ihre E-Mail",
      left: "Danke! Unser Team meldet sich bei Ihnen.", failed: "Der Assistent konnte nicht antworten. Bitte erneut versuchen.",
      retrying: "Der Assistent ist gerade ausgelastet. Neuer Versuch…",
      gone: "Dieser Chat ist hier nicht verfügbar.",
      guest: "Ihre Anmeldung ließ sich nicht bestätigen; Sie chatten als Gast. Laden Sie die Seite neu, um es erneut zu versuchen.",
      choice: "Wer soll Ihnen antworten?", ask: "Den Assistenten fragen", person: "Mit einem Menschen sprechen", human: "Mit einem Menschen sprechen",
      toTeam: "Ihre Nachricht geht an eine Person aus unserem Team.", team: "Schreiben Sie unserem Support-Team…", support: "Support",
      agent_joined: "{a} von {c} ist dem Chat beigetreten.", handed_back: "Sie chatten wieder mit dem Assistenten.",
      resolved: "Dieses Gespräch wurde als erledigt markiert. Schreiben Sie uns jederzeit wieder.",
      waitNow: "Gleich kommt eine Person aus unserem Team dazu. Ihre Nachrichten gehen jetzt an sie.",
      waitOffline: "Gerade ist niemand aus unserem Team online. Wir behalten Ihre Anfrage und antworten hier und per E-Mail.",
      waitAway: "Unser Team ist nicht da; es ist {t} zurück. Wir behalten Ihre Anfrage und antworten hier und per E-Mail.",
      askEmail: "Hinterlassen Sie Ihre E-Mail, damit wir Ihnen auch dort antworten können.", emailSend: "E-Mail senden",
      emailLeft: "Danke! Wir antworten Ihnen hier und per E-Mail.", followUp: "Eine Person aus unserem Team meldet sich hier bei Ihnen." },
    fr: { label: "Votre message", send: "Envoyer", placeholder: "Posez-nous votre question…", connecting: "Connexion…",
      online: "En ligne", offline: "Reconnexion…", email: "E-mail pour une réponse (facultatif)",
      leaveText: "Votre message pour notre équipe", leaveSend: "Laisser un message", leaveOpen: "Ou laissez un message et votre e-mail à notre équipe",
      left: "Merci ! Notre équipe vous répondra.", failed: "L'assistant n'a pas pu répondre. Veuillez réessayer.",
      retrying: "L'assistant est très sollicité. Nouvelle tentative…",
      gone: "Cette discussion n'est pas disponible ici.",
      guest: "Nous n'avons pas pu confirmer votre connexion : vous discutez en tant qu'invité. Rechargez la page pour réessayer.",
      choice: "Qui doit vous répondre ?", ask: "Demander à l'assistant", person: "Parler à une personne", human: "Parler à une personne",
      toTeam: "Votre message ira à une personne de notre équipe.", team: "Écrivez à notre équipe d'assistance…", support: "Assistance",
      agent_joined: "{a} de {c} a rejoint la discussion.", handed_back: "Vous êtes de nouveau avec l'assistant.",
      resolved: "Cette discussion a été marquée comme résolue. Écrivez-nous quand vous voulez.",
      waitNow: "Une personne de notre équipe va vous rejoindre. Vos messages lui sont maintenant adressés.",
      waitOffline: "Personne de notre équipe n'est en ligne pour le moment. Nous gardons votre demande et répondrons ici et par e-mail.",
      waitAway: "Notre équipe est absente ; retour {t}. Nous gardons votre demande et répondrons ici et par e-mail.",
      askEmail: "Laissez votre e-mail pour que nous puissions aussi vous répondre par ce biais.", emailSend: "Envoyer mon e-mail",
      emailLeft: "Merci ! Nous vous répondrons ici et par e-mail.", followUp: "Une personne de notre équipe vous répondra ici." }
  };
  var lang = "en", langs = navigator.languages || [navigator.language || "en"];
  for (var i = 0; i < langs.length; i++) {
    var code = String(langs[i]).slice(0, 2).toLowerCase();
    if (STRINGS[code]) { lang = code; break; }
  }
  var t = STRINGS[lang];
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-t]").forEach(function (el) { el.textContent = t[el.getAttribute("data-t")]; });

  var $ = function (id) { return document.getElementById(id); };
  var log = $("w-log"), form = $("w-form"), input = $("w-input"), send = $("w-send"), state = $("w-state");
  var notice = $("w-notice"), leave = $("w-leave"), leaveOpen = $("w-leave-open");
  var choice = $("w-choice"), human = $("w-human"), leaveText = $("w-leave-text"), leaveSend = $("w-leave-send");
  input.placeholder = t.placeholder;
  if (/^#[0-9a-f]{6}$/i.test(cfg.colour)) document.documentElement.style.setProperty("--c", cfg.colour);

  var hash = new URLSearchParams(location.hash.slice(1));
  var uid = hash.get("uid") || "", sig = hash.get("sig") || "", exp = hash.get("exp") || "";
  history.replaceState(null, "", location.pathname);  // the identity stays out of this frame's history

  var memory = {};
  try { memory = JSON.parse(hash.get("state") || "{}") || {}; } catch (e) { memory = {}; }
  function keep(k, v) {  // the frame's own storage is refused: the host page's loader keeps it
    if (v === null) delete memory[k]; else memory[k] = v;
    if (parent !== window) parent.postMessage({ type: "acme-support:store", name: k, value: v }, cfg.origin);
  }
  var store = {
    get: function (k) { try { return localStorage.getItem(k); } catch (e) { return memory[k] || null; } },
    set: function (k, v) { try { localStorage.setItem(k, v); } catch (e) { keep(k, v); } },
    del: function (k) { try { localStorage.removeItem(k); } catch (e) { keep(k, null); } }
  };
  var TOKEN = "acme-support:" + cfg.key + ":token";
  // The open conversation per identity: the customer's (while the server accepts the identity) and the
  // guest's, which is resumed instead when it does not (forged, expired), leaving the customer's alone.
  var GUEST = "acme-support:" + cfg.key + ":conversation:visitor";
  var CONV = uid ? "acme-support:" + cfg.key + ":conversation:user:" + uid : GUEST;
  var held = GUEST;  // the key of the conversation this connection holds: known from the visitor frame

  var lastQuestion = "", ws = null, current = null, busy = false, retry = 0, closedForGood = false;
  // Who answers (docs/protocol.md, "A person in the conversation"): a person was asked for or owns the chat.
  // `answerer`: picked up front ("assistant" / "person"), sent with the first question while `choosing`.
  var humans = false, choosing = false, answerer = "", anonymous = true, emailLeft = false, emailMode = false;

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function add(role, text, status, author) {
    var li = document.createElement("li");
    li.className = role === "user" ? "u" : role === "agent" ? "p" : "a";
    if (role === "agent") {  // a person from the support team: their name above their message
      var who = document.createElement("span");
      who.className = "who";
      who.textContent = author || t.support;
      li.appendChild(who);
      li.appendChild(document.createTextNode(text));
    } else {
      li.textContent = text;
    }
    if (status) li.setAttribute("data-status", status);
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
    return li;
  }

  function say(text) { notice.textContent = text; notice.hidden = !text; }
  function setBusy(value) { busy = value; send.disabled = value; }

  // Who answers now: the box's prompt, and "Talk to a human" while the assistant does (once there is a chat).
  function setHumans(value) {
    humans = value;
    input.placeholder = humans || answerer === "person" ? t.team : t.placeholder;
    human.hidden = humans || choosing || !log.children.length;
  }

  function showChoice(on) {
    choosing = on;
    choice.hidden = !on;
    setHumans(humans);
  }

  // The notice of a conversation_state, in the visitor's language (`notice_code`; the server's words else).
  function stateNotice(f) {
    if (f.notice_code === "waiting") {
      if (f.reach === "away" && f.back_at) {
        var back = new Date(f.back_at).toLocaleString(lang, { weekday: "long", hour: "2-digit", minute: "2-digit" });
        return t.waitAway.replace("{t}", back);
      }
      return (f.reach === "now" ? t.waitNow : f.reach === "offline" ? t.waitOffline : "") || f.notice;
    }
    if (f.notice_code === "agent_joined") return t.agent_joined.replace("{a}", f.agent || t.support).replace("{c}", cfg.company);
    return (f.notice_code === "handed_back" || f.notice_code === "resolved" ? t[f.notice_code] : "") || f.notice;
  }

  function connect() {
    var q = new URLSearchParams();
    var token = store.get(TOKEN), conversation = store.get(CONV), guest = store.get(GUEST);
    if (token) q.set("token", token);
    if (conversation) q.set("conversation", conversation);
    if (uid && sig) {
      q.set("user_id", uid); q.set("user_hash", sig);
      if (exp) q.set("user_expires", exp);
      if (guest) q.set("guest_conversation", guest);
    }
    q.set("lang", Array.prototype.slice.call(langs, 0, 5).join(","));  // answers in the browser's language
    state.textContent = t.connecting;
    setBusy(true);  // until the conversation frame: nothing typed is sent into a closed socket
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + cfg.ws + "?" + q);
    ws.onmessage = function (ev) { handle(JSON.parse(ev.data)); };
    ws.onclose = function (ev) {
      state.textContent = t.offline;
      setBusy(true);
      if (ev.code === 4404 && store.get(held)) { store.del(held); connect(); return; }  // that chat is gone: a new one
      if (ev.code === 4404 || ev.code === 4429 || closedForGood) { closedForGood = true; say(t.gone); return; }
      setTimeout(connect, Math.min(30000, 500 * Math.pow(2, retry++)));
    };
  }

  function handle(f) {
    if (f.type === "conversation") {
      retry = 0;
      state.textContent = t.online;
      store.set(held, f.id);
      if (held !== GUEST && store.get(GUEST) === f.id) store.del(GUEST);  // the guest chat became the customer's
      var streaming = null;
      if (f.messages) {
        log.textContent = "";
        current = null;
        f.messages.forEach(function (m) {
          // An answer still being written: the text so far follows as a delta.
          if (m.status === "streaming") streaming = add(m.role, "", m.status);
          else add(m.role, m.text, m.status, m.author);
        });
      }
      current = streaming;
      setBusy(!!streaming);
      showChoice(!!f.offer_choice && !log.children.length && !answerer);
      setHumans(!!f.humans_answer);
    } else if (f.type === "answer_started") {  // asked from another tab of this visitor
      if (f.question) add("user", f.question.text);
      current = add("assistant", "", "streaming");
      setBusy(true);
    } else if (f.type === "ack") {
      if (!f.reply_id) setBusy(false);  // a person answers this chat: no answer from the assistant follows
    } else if (f.type === "message_added") {  // a support agent's message, or the visitor's from another tab
      var m = f.message || {};
      if (m.role === "agent" || m.role === "user") add(m.role, m.text || "", "complete", m.author);
    } else if (f.type === "conversation_state") {  // a person was asked for, joined, handed back, resolved
      setHumans(!!f.humans_answer);
      if (f.notice || f.notice_code) say(stateNotice(f));
      // Nobody to answer now: an anonymous visitor may leave an email for the reply.
      if (f.notice_code === "waiting" && f.reach !== "now" && anonymous && !emailLeft) showLeave(true, true);
    } else if (f.type === "visitor") {  // first, before the conversation
      store.set(TOKEN, f.token);
      anonymous = !f.identified;
      emailLeft = !!f.email_left;
      held = f.identified ? CONV : GUEST;
      if (f.identity_error) say(t.guest);
    } else if (f.type === "retrying") {  // overload: the server waits for capacity instead of failing at once
      say(t.retrying);
    } else if (f.type === "delta") {
      if (!notice.hidden) say("");
      if (!current) current = add("assistant", "", "streaming");
      current.textContent += f.text;
      log.scrollTop = log.scrollHeight;
    } else if (f.type === "reset") {
      if (current) current.textContent = "";
    } else if (f.type === "done") {
      if (!notice.hidden) say("");
      if (!current) current = add("assistant", "");
      current.setAttribute("data-status", f.status);
      current = null;
      setBusy(false);
      if (f.status === "degraded") {  // the assistant could not answer: the chat is in the team's queue
        say(t.followUp);
        if (anonymous && !emailLeft) showLeave(true, true);
      }
    } else if (f.type === "left") {
      if (emailMode) emailLeft = true;
      say(emailMode ? t.emailLeft : t.left);
      showLeave(false);
      leave.reset();
    } else if (f.type === "error") {
      if (current) { current.setAttribute("data-status", "failed"); current = null; }
      if (f.code === "generation_failed") say(t.failed); else say(f.message);
      if (f.code === "choice_unavailable") { answerer = ""; showChoice(false); }
      if (f.leave_message) {  // offered instead of an answer: the question is the message, unless edited
        var box = leave.querySelector("textarea");
        if (!box.value) box.value = lastQuestion;
        showLeave(true);
      }
      setBusy(false);
    }
  }

  // The form to leave a message for the team, or (`email`) just an email for the reply to a waiting request.
  function showLeave(show, email) {
    emailMode = !!(show && email);
    leave.hidden = !show;
    leaveText.hidden = emailMode;
    leaveSend.textContent = emailMode ? t.emailSend : t.leaveSend;
    leave.setAttribute("aria-label", emailMode ? t.askEmail : t.leaveSend);
    leaveOpen.setAttribute("aria-expanded", String(show));
    if (emailMode) say(notice.textContent + " " + t.askEmail);  // offered, not focused: the visitor may be typing
    else if (show) leave.querySelector("input").focus();
  }

  function submit() {
    var text = input.value.trim();
    if (!text || busy || !ws || ws.readyState !== 1) return;
    var frame = { type: "message", text: text, client_id: uuid() };
    if (choosing || answerer) {  // the conversation's first question carries the visitor's pick
      if (answerer) frame.answerer = answerer;
      answerer = "";
      showChoice(false);
    }
    if (!humans) say("");
    add("user", text);
    lastQuestion = text;
    ws.send(JSON.stringify(frame));
    input.value = "";
    setBusy(true);
    setHumans(humans);
  }

  form.addEventListener("submit", function (ev) { ev.preventDefault(); submit(); });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); submit(); }
  });
  leaveOpen.addEventListener("click", function () { showLeave(leave.hidden); });
  choice.querySelectorAll("button").forEach(function (b) {
    b.addEventListener("click", function () {
      answerer = b.getAttribute("data-answerer");
      choice.hidden = true;
      setHumans(humans);
      say(answerer === "person" ? t.toTeam : "");
      input.focus();
    });
  });
  human.addEventListener("click", function () {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: "human_request" }));
    input.focus();
  });
  leave.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var data = new FormData(leave);
    var text = emailMode ? "" : String(data.get("text"));
    if (!ws || ws.readyState !== 1 || !(text.trim() || (emailMode && data.get("email")))) return;
    ws.send(JSON.stringify({ type: "leave_message", text: text, email: data.get("email") }));
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && parent !== window) parent.postMessage("acme-support:close", "*");
  });
  connect();
  input.focus();
})();
