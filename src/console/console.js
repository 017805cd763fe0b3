// The firedrill console's only script: follow the server's events, count the timers.
"use strict";
(function () {
  let offset = Number(document.body.dataset.serverNow || Date.now()) - Date.now();
  function clock(s) {
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, r = s % 60;
    const two = (n) => String(n).padStart(2, "0");
    return h > 0 ? h + ":" + two(m) + ":" + two(r) : m + ":" + two(r);
  }
  function tick() {
    document.querySelectorAll("[data-since]").forEach((el) => {
      el.textContent = clock(Math.max(0, Math.floor((Date.now() + offset - Number(el.dataset.since)) / 1000)));
    });
  }
  const live = document.getElementById("live");
  if (live && window.EventSource) {
    const source = new EventSource(live.dataset.events);
    source.addEventListener("update", (e) => {
      if (e.lastEventId) offset = Number(e.lastEventId) - Date.now();
      // What a person was typing survives the update.
      const kept = {};
      live.querySelectorAll("input[name]:not([type=hidden]), select[name]").forEach((el) => { kept[el.id || el.name] = el.value; });
      const focused = document.activeElement && document.activeElement.id;
      live.innerHTML = e.data;
      live.querySelectorAll("input[name]:not([type=hidden]), select[name]").forEach((el) => {
        const key = el.id || el.name;
        if (key in kept) el.value = kept[key];
      });
      if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
      tick();
    });
  }
  tick();
  setInterval(tick, 1000);
})();
