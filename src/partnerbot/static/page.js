// The chat page's script, put in the page's <head> by ui.py.
(function () {
  // A citation [n] (clicked or activated with Enter) selects its answer: Gradio's select event shows that
  // answer's cards. This then moves focus to card n once it is shown, so Tab continues to its source link.
  // Capture phase, so the link never navigates.
  document.addEventListener('click', function (e) {
    var a = e.target.closest ? e.target.closest('a.pb-cite') : null;
    if (!a) return;
    e.preventDefault();
    var id = a.getAttribute('href').slice(1), tries = 0, card = null;
    (function go() {
      var found = document.getElementById(id);
      if (found && found !== card) {  // shown, or shown again after the panel re-rendered
        card = found;
        card.setAttribute('tabindex', '-1');
        card.classList.add('pb-focus');
        card.focus({preventScroll: true});
        card.scrollIntoView({block: 'nearest'});
        setTimeout(function () { found.classList.remove('pb-focus'); }, 2000);
      }
      if (tries++ < 30) setTimeout(go, 100);
    })();
  }, true);

  // Screen readers: Gradio's chat log is a live region, so every streamed word would be read out.
  // Its live region is switched off, and each finished answer, which the server puts in
  // #answer-announcement when it is complete, is copied once into a polite live region of our own.
  var live = null, last = '';
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
    var log = document.querySelector('#chat [role="log"]');
    if (log && log.getAttribute('aria-live') !== 'off') log.setAttribute('aria-live', 'off');
    var src = document.querySelector('#answer-announcement .pb-announce');
    var key = src ? src.getAttribute('data-key') || '' : '';
    if (live && key !== last) {
      last = key;
      if (key) live.textContent = src.textContent;
    }
  }
  new MutationObserver(update).observe(document.documentElement, {childList: true, subtree: true, characterData: true});
})();
