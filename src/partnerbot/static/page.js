// The chat page's script, put in the page's <head> by ui.py.
(function () {
  function questionBox() { return document.querySelector('#question textarea'); }

  // "Skip to question", the first stop of the page: focus goes into the question box itself.
  document.addEventListener('click', function (e) {
    var skip = e.target.closest ? e.target.closest('a.pb-skip') : null;
    if (!skip) return;
    e.preventDefault();
    var box = questionBox();
    if (box) box.focus();
  }, true);

  // A citation [n] (clicked, or activated with Enter) opens its answer's sources, which sit right under the
  // answer, and moves focus to card n, so Tab or an arrow key continues to its links. Capture phase, so the
  // link never navigates.
  document.addEventListener('click', function (e) {
    var a = e.target.closest ? e.target.closest('a.pb-cite') : null;
    if (!a) return;
    e.preventDefault();
    var card = document.getElementById(a.getAttribute('href').slice(1));
    if (!card) return;
    for (var d = card.closest('details'); d; d = d.parentElement.closest('details')) d.open = true;
    card.classList.add('pb-focus');
    card.focus({preventScroll: true});
    // The card's first link becomes the conversation's stop, so Tab goes on to it (as the arrow keys do).
    var first = items().filter(function (x) { return card.contains(x); })[0];
    if (first) setCurrent(first);
    settle(card, 'start');
    setTimeout(function () { card.classList.remove('pb-focus'); }, 2000);
  }, true);

  // Opening an answer's sources shows them from their first line; opening "Show the whole document" brings
  // the cited sentence into view. Again a moment later: the chat keeps itself at its end as its content grows.
  function settle(el, block) {  // scroll the chat, not the page, so that `el` is at its top or centre
    var log = document.querySelector('#chat [role="log"]');
    if (!log || !log.contains(el)) return;
    var go = function () {
      var r = el.getBoundingClientRect(), v = log.getBoundingClientRect();
      log.scrollTop += block === 'center' ? r.top + r.height / 2 - (v.top + v.height / 2) : r.top - v.top - 8;
    };
    go();
    setTimeout(go, 150);
  }
  // A whole document is not part of its answer: the first time its view is opened, the card's link to it is
  // replaced by the document itself, fetched from the server (sanitised there, with the cited sentence marked).
  function showDocument(d) {
    var view = d.querySelector('.pb-doc'), link = view && view.querySelector('a.pb-doc-link');
    if (!link) {
      var mark = d.querySelector('mark.pb-cited');
      if (mark) settle(mark, 'center');
      return;
    }
    if (view.getAttribute('aria-busy') === 'true') return;
    view.setAttribute('aria-busy', 'true');
    fetch(link.href, {credentials: 'same-origin'})
      .then(function (r) { return r.text(); })
      .then(function (body) { view.innerHTML = body; })
      .catch(function () { view.textContent = 'The document could not be loaded. Please try again.'; })
      .then(function () {
        view.removeAttribute('aria-busy');
        var mark = d.querySelector('mark.pb-cited');
        if (mark && d.open) settle(mark, 'center');
        normalize();
      });
  }
  document.addEventListener('toggle', function (e) {
    var d = e.target;
    if (d.matches && d.open && d.matches('details.pb-whole')) {
      showDocument(d);
    } else if (d.matches && d.open && d.matches('details.pb-sources')) {
      var card = document.activeElement;  // opened by a citation: its card is in view already
      if (!(card && card.classList.contains('pb-card') && d.contains(card))) settle(d.querySelector('summary'), 'start');
    }
    normalize();
  }, true);

  // "Copy message" copies what the reader sees (the answer and a list of its sources), not the message's markup.
  document.addEventListener('click', function (e) {
    var b = e.target.closest ? e.target.closest('#chat button[aria-label="Copy message"]') : null;
    if (!b) return;
    var bar = b.closest('.message-buttons');  // a message's buttons follow its row
    var row = bar ? bar.previousElementSibling : null, content = row && row.querySelector('.message-content');
    if (!content) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    var copy = content.cloneNode(true);
    var sources = Array.prototype.map.call(content.querySelectorAll('.pb-card'), function (card) {
      var link = card.querySelector('.pb-page a');
      return card.querySelector('.pb-card-title').textContent + (link ? ' ' + link.href : '');
    });
    copy.querySelectorAll('details, .pb-try').forEach(function (n) { n.remove(); });
    var text = copy.innerText.trim() + (sources.length ? '\n\nSources:\n' + sources.join('\n') : '');
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text);
    else {
      var t = document.createElement('textarea');
      t.value = text;
      t.style.position = 'fixed';
      t.style.left = '-9999px';
      document.body.appendChild(t);
      t.select();
      document.execCommand('copy');
      t.remove();
      b.focus();
    }
    b.classList.add('pb-copied');
    setTimeout(function () { b.classList.remove('pb-copied'); }, 1500);
  }, true);

  // The conversation is one stop in the Tab order, so the question box stays a few stops away however long the
  // chat grows: one item in it (a citation, a source link, a message's Copy, Like or Dislike, an offered
  // question) is tabbable, and the arrow keys, Home and End move between them. Everything stays reachable by
  // pointer and by a screen reader's own navigation.
  var current = null;
  function chatRoot() { return document.getElementById('chat'); }
  function shown(e) {  // laid out, and not inside a closed <details> (Chrome lays out its hidden content too)
    for (var d = e.closest('details'); d; d = d.parentElement ? d.parentElement.closest('details') : null) {
      if (!d.open && e.closest('summary') !== d.querySelector(':scope > summary')) return false;
    }
    return e.getClientRects().length > 0;
  }
  function items() {
    var chat = chatRoot();
    if (!chat) return [];
    var found = Array.prototype.filter.call(
      chat.querySelectorAll('a[href], button, summary, [tabindex]:not(.pb-card)'),
      function (e) { return !e.disabled && shown(e) && !e.closest('.top-panel'); });
    for (var i = 0; i + 1 < found.length; i++) {  // Like comes before Dislike (as the page shows them)
      if (/^Dislike/.test(found[i].getAttribute('aria-label') || '') &&
          /^Like/.test(found[i + 1].getAttribute('aria-label') || '')) {
        var t = found[i]; found[i] = found[i + 1]; found[i + 1] = t; i++;
      }
    }
    return found;
  }
  function fallback(list) {  // the newest answer's first item, else the first one
    var bots = document.querySelectorAll('#chat .bot-row');
    var last = bots.length ? bots[bots.length - 1] : null;
    if (last) {
      for (var i = 0; i < list.length; i++) {
        if (last.compareDocumentPosition(list[i]) & (Node.DOCUMENT_POSITION_FOLLOWING | Node.DOCUMENT_POSITION_CONTAINED_BY)) return list[i];
      }
    }
    return list[0] || null;
  }
  function normalize() {
    var list = items();
    if (!current || list.indexOf(current) < 0) current = fallback(list);
    var chat = chatRoot();
    if (!chat) return;
    chat.querySelectorAll('a[href], button, summary, [tabindex]').forEach(function (e) {
      if (e === current) e.setAttribute('tabindex', '0');
      else if (e.getAttribute('tabindex') !== '-1') e.setAttribute('tabindex', '-1');
    });
  }
  function setCurrent(item) {
    if (current && current !== item) current.setAttribute('tabindex', '-1');
    current = item;
    current.setAttribute('tabindex', '0');
  }
  document.addEventListener('focusin', function (e) {
    var chat = chatRoot();
    if (chat && chat.contains(e.target) && items().indexOf(e.target) >= 0) setCurrent(e.target);
  });
  document.addEventListener('keydown', function (e) {
    var chat = chatRoot();
    if (!chat || !chat.contains(e.target) || e.altKey || e.ctrlKey || e.metaKey) return;
    var step = {ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1}[e.key];
    var list = items();
    if (!list.length || !(step || e.key === 'Home' || e.key === 'End')) return;
    var at = list.indexOf(e.target), next;
    if (e.key === 'Home') next = list[0];
    else if (e.key === 'End') next = list[list.length - 1];
    else if (at >= 0) next = list[Math.min(list.length - 1, Math.max(0, at + step))];
    else {  // focus is on a source card: go to the item after (or before) it
      var after = list.filter(function (x) { return e.target.compareDocumentPosition(x) & Node.DOCUMENT_POSITION_FOLLOWING; });
      next = step > 0 ? after[0] : list[list.length - after.length - 1];
    }
    if (!next) return;
    e.preventDefault();
    next.focus();
    next.scrollIntoView({block: 'nearest'});
  });

  // The chat scrolls to its end for each answer; when the answer is taller than the chat, the question it
  // answers would scroll out of view: the chat stops where that question is at its top instead. Asking again
  // goes back to the end, where the new question appears (the chat follows only while it is at its end).
  function scrollToEnd() {
    var log = document.querySelector('#chat [role="log"]');
    if (log) log.scrollTop = log.scrollHeight;
  }
  document.addEventListener('click', function (e) {
    if (e.target.closest && e.target.closest('#ask-button, #chat .options button, #chat .examples button')) scrollToEnd();
  }, true);
  document.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey && e.target.closest && e.target.closest('#question')) scrollToEnd();
  }, true);
  function keepQuestionInView() {
    var log = document.querySelector('#chat [role="log"]');
    var asked = document.querySelectorAll('#chat .user-row');
    if (!log || !asked.length) return;
    var q = asked[asked.length - 1];
    var top = q.getBoundingClientRect().top - log.getBoundingClientRect().top + log.scrollTop - 8;
    if (log.scrollTop > top) log.scrollTop = top;
  }

  // Screen readers: Gradio's chat log is a live region, so every streamed word would be read out.
  // Its live region is switched off, and each finished answer, which the server puts in
  // #answer-announcement when it is complete, is copied once into a polite live region of our own.
  var live = null, last = '', pending = 0;
  function update() {
    if (!live && document.body) {
      live = document.createElement('div');
      live.id = 'pb-live';
      live.className = 'pb-sr-only';
      live.setAttribute('role', 'status');
      live.setAttribute('aria-live', 'polite');
      live.setAttribute('aria-atomic', 'true');
      document.body.appendChild(live);
    }
    // Citation markers are named "source 1: <title>"; the chat's sanitizer keeps only their title attribute.
    document.querySelectorAll('#chat a.pb-cite[title]:not([aria-label])').forEach(function (a) {
      a.setAttribute('aria-label', a.getAttribute('title'));
    });
    // Gradio names each message with its whole raw content, markup included (an answer's cards and documents
    // too): the name becomes the message's own text, shortened.
    document.querySelectorAll('#chat [data-testid="bot"][aria-label], #chat [data-testid="user"][aria-label]')
      .forEach(function (m) {
        var label = m.getAttribute('aria-label');
        if (label.indexOf('<') < 0 && label.length <= 300) return;
        var who = m.getAttribute('data-testid') === 'bot' ? "bot's message: " : "user's message: ";
        var text = m.innerText.replace(/\s+/g, ' ').trim();
        m.setAttribute('aria-label', who + (text.length > 280 ? text.slice(0, 279) + '…' : text));
      });
    // The empty chat's example questions are buttons in a role="list" without list items (axe:
    // aria-required-children): a plain group of buttons is what they are.
    document.querySelectorAll('#chat .examples[role="list"]').forEach(function (l) { l.removeAttribute('role'); });
    var log = document.querySelector('#chat [role="log"]');
    if (log && log.getAttribute('aria-live') !== 'off') log.setAttribute('aria-live', 'off');
    var src = document.querySelector('#answer-announcement .pb-announce');
    var key = src ? src.getAttribute('data-key') || '' : '';
    if (live && key !== last) {
      last = key;
      if (key) live.textContent = src.textContent;
      current = null;  // a finished answer: the conversation's stop moves to it
      if (key) setTimeout(keepQuestionInView, 450);  // after the chat's own scroll, 300 ms after an update
    }
    if (!pending) pending = requestAnimationFrame(function () { pending = 0; normalize(); });
  }
  new MutationObserver(update).observe(document.documentElement, {childList: true, subtree: true, characterData: true});
})();
