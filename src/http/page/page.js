// The operator's page (src/http/ui.ts): refreshes the summary and the table (fragments escaped by the
// server) and confirms replays with a count. Served inline under a CSP nonce; no build step.
const q = location.search;
async function refresh() {
  try {
    const [s, e] = await Promise.all([
      fetch('/api/summary', { credentials: 'same-origin' }),
      fetch(`/api/events${q}`, { credentials: 'same-origin' }),
    ]);
    if (s.ok && document.getElementById('summary')) document.getElementById('summary').innerHTML = (await s.json()).html;
    if (e.ok && document.getElementById('events')) document.getElementById('events').innerHTML = (await e.json()).html;
    const u = document.getElementById('updated');
    if (u)
      u.textContent = new Date()
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z');
  } catch {}
}
if (document.getElementById('events')) setInterval(refresh, 5000);
for (const form of document.querySelectorAll('form.replay')) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const params = new URLSearchParams(new FormData(form));
    params.delete('csrf');
    const answer = await fetch(`/replay/preview?${params}`, { credentials: 'same-origin' });
    if (!answer.ok) {
      alert(await answer.text());
      return;
    }
    const { count } = await answer.json();
    if (count === 0) {
      alert('Nothing to replay: no matching event that is not pending already.');
      return;
    }
    if (confirm(`Send ${count} event(s) again? They go back to pending, keeping their ids.`)) form.submit();
  });
}
