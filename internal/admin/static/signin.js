// The sign-in page of sluice's admin server. The server answers a GET /
// without the bearer token with this page (status 401). It takes the token
// from the URL fragment (#token=...), which the browser never sends to a
// server, or from the form, fetches the dashboard with the token, and
// replaces itself with it. The token is kept in sessionStorage for this tab
// only and removed from the address bar.
(function () {
  'use strict';
  var KEY = 'sluice-admin-token';
  var message = document.getElementById('message');

  function tokenFromHash() {
    var p = new URLSearchParams(location.hash.slice(1));
    return p.get('token');
  }

  function say(text) {
    message.textContent = text;
  }

  function open(token) {
    say('');
    fetch('/', { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' })
      .then(function (res) {
        if (res.status === 401) {
          sessionStorage.removeItem(KEY);
          say('That token was refused.');
          return null;
        }
        if (!res.ok) {
          say('The dashboard did not load: HTTP ' + res.status + '.');
          return null;
        }
        return res.text();
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        sessionStorage.setItem(KEY, token);
        history.replaceState(null, '', location.pathname + location.search);
        document.open();
        document.write(html);
        document.close();
      })
      .catch(function (err) {
        say('The admin server did not answer: ' + err.message);
      });
  }

  document.getElementById('signin').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var t = document.getElementById('token').value.trim();
    if (t) {
      open(t);
    }
  });

  // Editing the fragment in the address bar does not reload the page.
  window.addEventListener('hashchange', function () {
    var t = tokenFromHash();
    if (t) {
      open(t);
    }
  });

  var token = tokenFromHash() || sessionStorage.getItem(KEY);
  if (token) {
    open(token);
  }
})();
