// Live updates for a run's page, where JavaScript is on: the run's events arrive over
// server-sent events (the same stream as GET /api/v1/runs/{run}/events, here with the
// session's cookie), each stack's engine lines go to a log of its own, and when a stack or
// stage ends the grid is fetched again. Without JavaScript the page works the same, reloaded.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !live.dataset.live || !window.EventSource) { return; }
  var run = live.dataset.run;
  var list = document.getElementById("events");
  var logs = document.getElementById("stack-logs");
  var state = document.getElementById("live-state");
  var kinds = ["walk_started", "step_started", "engine_output", "stack_finished", "stack_ended",
    "note", "changes_detected", "artifact_built", "run_started", "run_resumed", "awaiting_approval",
    "run_finished", "saved_plan_fetched", "stage_finished", "interrupted_run_found", "stale_lock",
    "stale_lock_freed", "interrupted_run_resolved", "verification_started", "verification_finished",
    "interrupted", "report", "finished"];
  var refreshing = false;

  function logOf(e) {
    var key = e.stage + "/" + e.instance + "/" + e.stack;
    var pre = logs.querySelector('pre[data-key="' + CSS.escape(key) + '"]');
    if (!pre) {
      var details = document.createElement("details");
      details.open = true;
      var summary = document.createElement("summary");
      summary.textContent = e.stack + " in " + e.instance;
      pre = document.createElement("pre");
      pre.className = "log";
      pre.dataset.key = key;
      details.appendChild(summary);
      details.appendChild(pre);
      logs.appendChild(details);
    }
    return pre;
  }

  function describe(kind, e) {
    var parts = [kind.replace(/_/g, " ")];
    ["stage", "instance", "stack", "step", "status", "outcome", "message"].forEach(function (k) {
      if (typeof e[k] === "string") { parts.push(k + "=" + e[k]); }
    });
    return parts.join(" ");
  }

  function refresh() {
    if (refreshing) { return; }
    refreshing = true;
    fetch(location.pathname, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var page = new DOMParser().parseFromString(html, "text/html");
        ["grid-section", "run-status"].forEach(function (id) {
          var fresh = page.getElementById(id);
          var old = document.getElementById(id);
          if (fresh && old) { old.replaceWith(fresh); }
        });
        page.querySelectorAll("section.decision").forEach(function (fresh) {
          var old = document.getElementById(fresh.id);
          if (!old) { location.reload(); } else if (!old.contains(document.activeElement)) { old.replaceWith(fresh); }
        });
      })
      .finally(function () { refreshing = false; });
  }

  var source = new EventSource("/runs/" + encodeURIComponent(run) + "/events");
  kinds.forEach(function (kind) {
    source.addEventListener(kind, function (message) {
      var e;
      try { e = JSON.parse(message.data); } catch (_) { return; }
      if (kind === "engine_output") {
        var pre = logOf(e);
        pre.textContent += e.line + "\n";
        pre.scrollTop = pre.scrollHeight;
        return;
      }
      var item = document.createElement("li");
      item.textContent = describe(kind, e);
      list.appendChild(item);
      while (list.children.length > 300) { list.removeChild(list.firstChild); }
      if (/finished|ended|awaiting|resumed|started/.test(kind) && kind !== "step_started") { refresh(); }
    });
  });
  source.addEventListener("open", function () { state.textContent = "Following this run live."; });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) { state.textContent = "The live stream ended."; }
  });
})();
