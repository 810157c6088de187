// A classic script (not inline: the page's Content-Security-Policy allows none).
// The viewer is a graph of ES modules (noVNC's); one static file that fails or hangs on
// the way leaves the page inert with no error shown. If the modules have not started
// within 20 s, load the page again (at most 3 times), then say so.
setTimeout(() => {
  if (document.body.dataset.loaded) return;
  const tries = Number(sessionStorage.getItem('viewer-reloads') || 0);
  if (tries < 3) {
    sessionStorage.setItem('viewer-reloads', String(tries + 1));
    location.reload();
  } else {
    document.body.dataset.state = 'disconnected';
    document.getElementById('status').textContent = 'The viewer could not load; reload the page.';
  }
}, 20000);
