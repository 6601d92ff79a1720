/* Deckhand dashboard: live updates over server-sent events, the diff's highlighting, and the action forms.
   Plain browser JavaScript, served as-is (no build step). The pages work without it, minus live updates. */
(function () {
  "use strict";

  function fmtDuration(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + "m" + String(s % 60).padStart(2, "0") + "s";
    return Math.floor(m / 60) + "h" + String(m % 60).padStart(2, "0") + "m";
  }
  function fmtAgo(iso) {
    if (!iso) return "never";
    var s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    return Math.floor(s / 3600) + " h ago";
  }
  function tick() {
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = fmtDuration(Date.now() - Date.parse(el.getAttribute("data-since")));
    });
    document.querySelectorAll("[data-ago]").forEach(function (el) {
      el.textContent = fmtAgo(el.getAttribute("data-ago"));
    });
  }

  function csrf() {
    var i = document.querySelector('input[name="_csrf"]');
    return i ? i.value : "";
  }

  function liveBadge() {
    var b = document.getElementById("live");
    if (!b) {
      b = document.createElement("span");
      b.id = "live";
      b.setAttribute("role", "status");
      var top = document.querySelector("header.top");
      if (top) top.appendChild(b);
    }
    return b;
  }

  function connect(url, onUpdate) {
    var badge = liveBadge();
    badge.textContent = "Connecting…";
    badge.className = "live-badge wait";
    var es = new EventSource(url);
    es.onopen = function () {
      badge.textContent = "● Live";
      badge.className = "live-badge on";
    };
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) return;
      badge.textContent = "Reconnecting…";
      badge.className = "live-badge wait";
    };
    es.addEventListener("update", function (e) {
      onUpdate(JSON.parse(e.data));
      tick();
    });
    es.addEventListener("end", function () {
      es.close();
      badge.textContent = "Finished";
      badge.className = "live-badge off";
    });
    es.addEventListener("gone", function () {
      es.close();
      badge.textContent = "Link revoked";
      badge.className = "live-badge off";
    });
  }

  function setHtml(id, html) {
    var el = document.getElementById(id);
    if (el && typeof html === "string" && el.innerHTML !== html) el.innerHTML = html;
  }

  var diffJs = null;
  /** diff2html's UI bundle (highlighting) is fetched only once there is a diff on the page. */
  function enhanceDiff() {
    var target = document.querySelector("[data-diff-view]");
    if (!target) return;
    if (!window.Diff2HtmlUI) {
      var src = document.body.getAttribute("data-diff-js");
      if (!diffJs && src) {
        diffJs = document.createElement("script");
        diffJs.src = src;
        diffJs.onload = enhanceDiff;
        document.head.appendChild(diffJs);
      }
      return;
    }
    try {
      var ui = new window.Diff2HtmlUI(target, undefined, { highlight: true, synchronisedScroll: true, fileListToggle: true, fileListStartVisible: true, fileContentToggle: true, stickyFileHeaders: false });
      ui.synchronisedScroll();
      ui.highlightCode();
      ui.fileListToggle(true);
      ui.fileContentToggle();
      // diff2html's show/hide switches are anchors without href: make them reachable by keyboard.
      target.querySelectorAll(".d2h-file-switch").forEach(function (a) {
        a.setAttribute("role", "button");
        a.setAttribute("tabindex", "0");
        a.addEventListener("keydown", function (e) {
          if (e.key === "Enter" || e.key === " ") {
            e.preventDefault();
            a.click();
          }
        });
      });
    } catch (err) {
      /* highlighting is a nicety; the diff is already readable */
    }
  }

  function runPage(body) {
    enhanceDiff();
    var format = body.getAttribute("data-diff-format") || "line-by-line";
    var diffEl = document.getElementById("run-diff");
    var url = body.getAttribute("data-events") + "?view=" + encodeURIComponent(format) + "&diff=" + encodeURIComponent(diffEl ? diffEl.getAttribute("data-diff-key") : "") + (body.getAttribute("data-full-diff") ? "&full=1" : "");
    connect(url, function (m) {
      body.setAttribute("data-status", m.status);
      setHtml("run-head", m.head);
      setHtml("run-questions", m.questions);
      setHtml("run-result", m.result);
      setHtml("run-todos", m.todos);
      setHtml("run-phases", m.phases);
      var ol = document.getElementById("run-timeline");
      (m.timeline || []).forEach(function (it) {
        var tpl = document.createElement("template");
        tpl.innerHTML = it.html;
        var node = tpl.content.firstElementChild;
        if (!node) return;
        var old = document.getElementById(it.id);
        if (old) {
          if (old.outerHTML !== node.outerHTML) old.replaceWith(node);
        } else ol.appendChild(node);
      });
      if (typeof m.diff === "string" && diffEl) {
        diffEl.innerHTML = m.diff;
        diffEl.setAttribute("data-diff-key", m.diffKey);
        enhanceDiff();
      }
    });

    document.addEventListener("submit", function (e) {
      var f = e.target;
      if (!f.hasAttribute || !f.hasAttribute("data-action")) return;
      e.preventDefault();
      var confirmText = f.getAttribute("data-confirm");
      if (confirmText && !window.confirm(confirmText)) return;
      var status = f.querySelector(".form-status");
      // The clicked button (an answer's option) is part of what is sent: read before it is disabled (a disabled
      // button is left out of the form's data).
      var button = e.submitter || f.querySelector("button[type=submit]");
      var body = new URLSearchParams(e.submitter ? new FormData(f, e.submitter) : new FormData(f)).toString();
      button.disabled = true;
      status.textContent = "Sending…";
      fetch(f.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json", "x-csrf-token": csrf() },
        body: body,
      })
        .then(function (r) {
          return r.json().then(function (j) {
            status.textContent = r.ok ? j.message : "Refused: " + (j.error || r.status);
            if (r.ok) {
              var ta = f.querySelector("textarea, input[type=text]");
              if (ta) ta.value = "";
            }
          });
        })
        .catch(function () {
          status.textContent = "Network error; try again.";
        })
        .then(function () {
          button.disabled = false;
        });
    });
    var ta = document.getElementById("follow-up-text");
    if (ta)
      ta.addEventListener("keydown", function (e) {
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
          e.preventDefault();
          ta.form.requestSubmit();
        }
      });
  }

  function listPage(body) {
    connect(body.getAttribute("data-events"), function (m) {
      setHtml("runs-rows", m.rows);
    });
    document.querySelectorAll("form.filters select").forEach(function (s) {
      s.addEventListener("change", function () {
        s.form.submit();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var body = document.body;
    var page = body.getAttribute("data-page");
    if (page === "run") runPage(body);
    else if (page === "list") listPage(body);
    tick();
    setInterval(tick, 1000);
  });
})();
