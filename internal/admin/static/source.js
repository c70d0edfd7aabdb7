// The config source line in the header of sluice's dashboard
// (dashboard.js, which the page runs after this file, calls render with
// each poll's answer of GET /api/v1/status): where the config comes from
// (a file and its path, flags, or etcd with the revision running) and,
// for etcd, whether it is connected. Lost, the line takes the warning
// style and says which revision is still served.
// It defines one name, sluiceSource, and touches nothing of the page but
// #config-source.
// No libraries: everything here was written for sluice.
var sluiceSource = (function () {
  'use strict';

  // view is the line's text, its tooltip and whether it warns, for
  // config_source src.
  function view(src) {
    if (src.source === 'flags') {
      return { text: 'config: flags', title: 'rules from the command line', warn: false };
    }
    if (src.source !== 'etcd') {
      return { text: 'config: file' + (src.path ? ' ' + src.path : ''), title: src.path || '', warn: false };
    }
    var title = 'etcd ' + (src.endpoints || []).join(', ') + ' key ' + src.key +
      (src.from_cache ? '; started from the cache' : '') +
      (src.last_error ? '; revision ' + src.seen_revision + ' rejected: ' + src.last_error : '');
    if (!src.connected) {
      return { text: 'config: etcd disconnected \u2014 serving revision ' + src.revision, title: title, warn: true };
    }
    return { text: 'config: etcd, revision ' + src.revision + ', connected', title: title, warn: false };
  }

  // render shows status, GET /api/v1/status's answer.
  function render(status) {
    var el = document.getElementById('config-source');
    var v = view(status.config_source || {});
    el.textContent = v.text;
    el.title = v.title;
    el.classList.toggle('warn', v.warn);
    el.dataset.source = status.config_source ? status.config_source.source : '';
    el.hidden = false;
  }

  return { render: render };
})();
