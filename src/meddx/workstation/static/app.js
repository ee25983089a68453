/* meddx workstation front end: plain JavaScript, no framework, no CDN. Text is always inserted
 * with textContent, never as HTML, so nothing typed by a user can run as script. */
(function () {
  "use strict";
  const {el, headline} = window.MeddxViewers;
  const main = document.getElementById("main");
  const banner = document.getElementById("banner");
  const session = {
    get token() { return sessionStorage.getItem("meddx.token"); },
    get user() { try { return JSON.parse(sessionStorage.getItem("meddx.user")); } catch (e) { return null; } },
    save(answer) {
      sessionStorage.setItem("meddx.token", answer.access_token);
      sessionStorage.setItem("meddx.user", JSON.stringify({username: answer.username, role: answer.role}));
    },
    clear() { sessionStorage.removeItem("meddx.token"); sessionStorage.removeItem("meddx.user"); },
  };
  const objectUrls = [];

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function request(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (session.token) headers.Authorization = `Bearer ${session.token}`;
    let body = options.body;
    if (options.json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(options.json); }
    const answer = await fetch(path, {method: options.method || "GET", headers, body});
    if (answer.status === 401 && !path.endsWith("/auth/token")) {
      session.clear(); go("#/login"); throw new ApiError(401, "Your session ended; please sign in again.");
    }
    if (!answer.ok) {
      let message = `${answer.status} ${answer.statusText}`;
      try {
        const data = await answer.json();
        if (typeof data.detail === "string") message = data.detail;
        else if (Array.isArray(data.detail)) message = data.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
      } catch (e) { /* not JSON */ }
      throw new ApiError(answer.status, message);
    }
    return answer;
  }
  const api = {
    async json(path, options) { const answer = await request(path, options); return answer.status === 204 ? null : answer.json(); },
    async blob(path) {
      const url = URL.createObjectURL(await (await request(path)).blob());
      objectUrls.push(url);
      return url;
    },
  };

  function notify(message, kind = "error") {
    banner.textContent = message; banner.className = `banner ${kind === "info" ? "info" : ""}`; banner.hidden = !message;
  }
  function go(hash) { if (location.hash !== hash) location.hash = hash; else route(); }
  function fmtDate(text) { return text ? new Date(text).toLocaleString() : ""; }
  function pct(value) { return value === null || value === undefined ? "n/a" : `${(value * 100).toFixed(1)}%`; }
  function can(...roles) { const user = session.user; return Boolean(user && roles.includes(user.role)); }
  function page(title, ...children) { main.replaceChildren(el("h1", {text: title}), ...children); }

  function updateChrome(active) {
    const user = session.user;
    document.getElementById("nav").hidden = !user;
    document.getElementById("who").hidden = !user;
    if (!user) return;
    document.getElementById("who-name").textContent = user.username;
    document.getElementById("who-role").textContent = user.role;
    for (const link of document.querySelectorAll("#nav a")) {
      const roles = link.dataset.roles ? link.dataset.roles.split(" ") : null;
      link.hidden = Boolean(roles && !roles.includes(user.role));
      link.classList.toggle("active", link.dataset.route === active);
    }
  }

  // ---- login --------------------------------------------------------------------------------
  function loginView() {
    const username = el("input", {type: "text", id: "username", autocomplete: "username", required: true});
    const password = el("input", {type: "password", id: "password", autocomplete: "current-password", required: true});
    const button = el("button", {type: "submit", id: "login-button", text: "Sign in"});
    const form = el("form", {class: "panel"},
      el("h1", {text: "Sign in"}),
      el("div", {class: "field"}, el("label", {for: "username", text: "User name"}), username),
      el("div", {class: "field"}, el("label", {for: "password", text: "Password"}), password),
      button);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      try {
        const body = new URLSearchParams({username: username.value, password: password.value});
        const answer = await api.json("/api/auth/token", {method: "POST", body});
        session.save(answer); notify("");
        go("#/worklist");
      } catch (error) { notify(error.message); } finally { button.disabled = false; }
    });
    main.replaceChildren(el("div", {class: "login"}, form));
    username.focus();
  }

  // ---- worklist -----------------------------------------------------------------------------
  async function worklistView(params) {
    const filters = {status: params.get("status") || "", kind: params.get("kind") || "",
      decision: params.get("decision") || "", q: params.get("q") || "", sort: params.get("sort") || "newest"};
    const select = (name, label, options) => el("div", {}, el("label", {for: `f-${name}`, text: label}),
      el("select", {id: `f-${name}`, name}, options.map(([value, text]) => el("option", {value, text, selected: filters[name] === value}))));
    const form = el("form", {class: "filters panel"},
      select("status", "Status", [["", "Any"], ["new", "New"], ["predicted", "Predicted"], ["reviewed", "Reviewed"], ["failed", "Failed"]]),
      select("kind", "Kind", [["", "Any"], ["image", "Image"], ["volume", "Volume"], ["ecg", "ECG"], ["series", "Series"], ["record", "Record"], ["text", "Text"]]),
      el("div", {}, el("label", {for: "f-q", text: "Patient / description"}), el("input", {type: "search", id: "f-q", name: "q", value: filters.q})),
      select("sort", "Sort by", [["newest", "Newest first"], ["oldest", "Oldest first"], ["disagreement", "Disagreement"], ["uncertainty", "Model uncertainty"]]),
      el("div", {}, el("button", {type: "submit", text: "Apply"})));
    form.addEventListener("change", () => form.requestSubmit());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const query = new URLSearchParams();
      for (const [key, value] of new FormData(form)) if (value) query.set(key, value);
      go(`#/worklist?${query}`);
    });
    const body = el("tbody");
    const table = el("table", {id: "worklist"}, el("thead", {}, el("tr", {},
      ["Study", "Patient", "Kind", "Status", "Finding", "Uncertainty", "Disagreements", "Uploaded"].map((h) => el("th", {text: h})))), body);
    page("Worklist", form, el("div", {class: "panel"}, table));
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filters)) if (value) query.set(key, value);
    const studies = await api.json(`/api/studies?${query}`);
    if (!studies.length) body.append(el("tr", {}, el("td", {colspan: 8, class: "empty", text: "No studies match."})));
    for (const study of studies) {
      const row = el("tr", {class: "clickable", "data-study": study.id, onclick: () => go(`#/study/${study.id}`)},
        el("td", {}, el("a", {href: `#/study/${study.id}`, text: `#${study.id}`})),
        el("td", {class: "mono", text: study.patient || ""}),
        el("td", {text: study.kind}),
        el("td", {}, el("span", {class: `badge ${study.status}`, text: study.status})),
        el("td", {text: study.latest_decision || "—"}),
        el("td", {class: study.latest_uncertainty > 0.8 ? "uncertainty-high" : "", text: pct(study.latest_uncertainty)}),
        el("td", {}, study.disagreements ? el("span", {class: "badge disagree", text: String(study.disagreements)}) : "0"),
        el("td", {class: "small muted", text: fmtDate(study.created_at)}));
      body.append(row);
    }
  }

  // ---- upload -------------------------------------------------------------------------------
  async function uploadView() {
    const info = await api.json("/api/info");
    const suffixes = Object.keys(info.accepted).sort();
    const files = el("input", {type: "file", id: "files", name: "files", multiple: true, accept: suffixes.join(","), required: true});
    const chosen = el("p", {class: "small muted", text: "No file chosen"});
    const drop = el("div", {class: "dropzone"}, el("p", {text: "Drop files here or choose them"}), files, chosen,
      el("p", {class: "small muted", text: `Accepted: ${suffixes.join(" ") || "nothing (no model registered)"} · up to ${info.max_upload_mb} MB`}));
    files.addEventListener("change", () => { chosen.textContent = [...files.files].map((f) => f.name).join(", ") || "No file chosen"; });
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); files.files = e.dataTransfer.files; files.dispatchEvent(new Event("change")); });
    const models = await api.json("/api/models");
    const model = el("select", {id: "model_id", name: "model_id"}, el("option", {value: "", text: "Newest model for this file type"}),
      models.filter((m) => m.active).map((m) => el("option", {value: String(m.id), text: `${m.name} @ ${m.version} (${m.task})`})));
    const field = (id, label, attrs = {}) => el("div", {class: "field"}, el("label", {for: id, text: label}), el("input", Object.assign({type: "text", id, name: id}, attrs)));
    const button = el("button", {type: "submit", id: "upload-button", text: "Upload and analyse"});
    const form = el("form", {class: "panel", id: "upload-form"},
      drop,
      el("div", {class: "grid", style: "margin-top:1rem"},
        el("div", {}, field("mrn", "Medical record number (encrypted at rest)", {maxlength: 64, autocomplete: "off"}),
          field("patient_name", "Patient name (encrypted at rest)", {maxlength: 200, autocomplete: "off"}),
          field("birth_date", "Date of birth", {type: "date"})),
        el("div", {}, el("div", {class: "field"}, el("label", {for: "model_id", text: "Model"}), model),
          el("div", {class: "field"}, el("label", {for: "description", text: "Description"}),
            el("textarea", {id: "description", name: "description", maxlength: 500})))),
      button);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!files.files.length) { notify("Choose a file to upload."); return; }
      button.disabled = true; button.textContent = "Analysing…";
      try {
        const data = new FormData(form);
        if (!data.get("model_id")) data.delete("model_id");
        const study = await api.json("/api/studies", {method: "POST", body: data});
        notify(`Study #${study.id} analysed.`, "info");
        go(`#/study/${study.id}`);
      } catch (error) { notify(error.message); } finally { button.disabled = false; button.textContent = "Upload and analyse"; }
    });
    page("Upload a study", form);
  }

  // ---- study --------------------------------------------------------------------------------
  function findingPanel(study, prediction) {
    const panel = el("section", {class: "panel finding", id: "finding"});
    if (!prediction) { panel.append(el("h2", {text: "Finding"}), el("p", {class: "muted", text: "No prediction yet."})); return panel; }
    const head = headline(prediction.outputs);
    // A whole ECG record is summarised by its beats: the bars are shares of beats per class.
    const beats = head.summary && head.summary.counts ? head.summary : null;
    const probs = beats ? Object.fromEntries(Object.entries(beats.counts).map(([name, n]) => [name, beats.beats ? n / beats.beats : 0]))
      : head.probabilities && typeof head.probabilities === "object" && !Array.isArray(head.probabilities) ? head.probabilities : {};
    // The five likeliest classes (a symptom model knows 24): the rest are summarised in one line.
    const ranked = Object.entries(probs).sort((a, b) => b[1] - a[1]);
    const shown = ranked.slice(0, 5);
    const warnings = (head.warnings || []).filter(Boolean);
    const model = prediction.model;
    panel.append(el("h2", {text: "AI finding"}),
      el("div", {class: "decision", id: "decision", text: prediction.decision || "see outputs"}),
      head.record ? el("p", {class: "small muted", text: `Record ${head.record}`}) : "",
      el("div", {class: "probs", id: "probabilities"}, shown.map(([name, p]) => el("div", {class: "prob"},
        el("div", {class: "row small"}, el("span", {text: name}), el("span", {class: "spacer"}), el("span", {class: "mono", text: pct(p)})),
        el("div", {class: "bar"}, el("div", {class: `fill ${name === prediction.decision ? "chosen" : ""}`, style: `width:${(p * 100).toFixed(1)}%`})))),
        ranked.length > shown.length ? el("p", {class: "small muted", text: `${ranked.length - shown.length} other classes: ${pct(ranked.slice(shown.length).reduce((t, [, p]) => t + p, 0))} together`}) : ""),
      warnings.length ? el("ul", {class: "warnings small", id: "warnings"}, warnings.map((w) => el("li", {text: w}))) : "",
      el("dl", {class: "facts"},
        beats ? [
          el("dt", {text: "Beats"}), el("dd", {id: "beat-count", text: `${beats.beats} in ${(beats.duration_s / 60).toFixed(1)} min, ${beats.heart_rate_bpm} bpm`}),
          el("dt", {text: "S / V burden"}), el("dd", {id: "burden", text: `${beats.S_burden_percent.toFixed(2)}% / ${beats.V_burden_percent.toFixed(2)}%`}),
        ] : [
          el("dt", {text: "Probability"}), el("dd", {id: "probability", text: pct(prediction.probability)}),
          el("dt", {text: "Decision threshold"}), el("dd", {text: head.threshold !== undefined && head.threshold !== null ? Number(head.threshold).toFixed(3) : "argmax"}),
        ],
        el("dt", {text: "Uncertainty"}), el("dd", {id: "uncertainty", class: prediction.uncertainty > 0.8 ? "uncertainty-high" : "",
          text: `${pct(prediction.uncertainty)}${prediction.uncertainty > 0.8 ? " (high: review carefully)" : ""}`}),
        el("dt", {text: "Model"}), el("dd", {}, el("a", {href: `#/models/${model.id}`, id: "model-card-link", text: `${model.name} @ ${model.version}`}), " ",
          el("span", {class: "small muted", text: "(model card)"})),
        el("dt", {text: "Latency"}), el("dd", {text: `${prediction.latency_ms.toFixed(0)} ms`}),
        el("dt", {text: "Analysed"}), el("dd", {text: fmtDate(prediction.created_at)})));
    // The predictor's own figure: Grad-CAM or ECG strip ("explanation"), or a SHAP / word plot.
    const plotKey = (prediction.artifacts || []).find((key) => key.endsWith(".plot"));
    const figure = prediction.has_explanation_figure ? `/api/predictions/${prediction.id}/explanation.png`
      : plotKey ? `/api/predictions/${prediction.id}/artifacts/${encodeURIComponent(plotKey)}.png` : null;
    if (figure) {
      const link = el("button", {type: "button", class: "link-button small", id: "explanation-figure", text: "Open the explanation figure", onclick: async () => {
        window.open(await api.blob(figure), "_blank", "noopener");
      }});
      panel.append(el("p", {}, link));
    }
    return panel;
  }

  function feedbackPanel(study, prediction, onSaved) {
    const panel = el("section", {class: "panel", id: "feedback"});
    panel.append(el("h2", {text: "Your review"}));
    if (!prediction) return panel;
    if (!can("clinician", "admin")) { panel.append(el("p", {class: "muted", text: "Reviews are given by clinicians."})); return panel; }
    const agree = el("input", {type: "radio", name: "agrees", value: "true", id: "agree", checked: true});
    const disagree = el("input", {type: "radio", name: "agrees", value: "false", id: "disagree"});
    const classes = prediction.model.class_names || [];
    const label = el("select", {id: "corrected_label", name: "corrected_label", disabled: true},
      el("option", {value: "", text: "Choose the correct finding"}), classes.map((c) => el("option", {value: c, text: c})));
    const comment = el("textarea", {id: "comment", name: "comment", maxlength: 2000, placeholder: "Optional comment"});
    const button = el("button", {type: "submit", id: "feedback-button", text: "Submit review"});
    const toggle = () => { label.disabled = agree.checked; if (agree.checked) label.value = ""; };
    agree.addEventListener("change", toggle); disagree.addEventListener("change", toggle);
    const form = el("form", {},
      el("div", {class: "choice"}, el("label", {for: "agree"}, agree, "Agree"), el("label", {for: "disagree"}, disagree, "Disagree")),
      el("div", {class: "field"}, el("label", {for: "corrected_label", text: "Corrected finding"}), label),
      el("div", {class: "field"}, el("label", {for: "comment", text: "Comment"}), comment), button);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      try {
        await api.json(`/api/studies/${study.id}/feedback`, {method: "POST", json: {prediction_id: prediction.id,
          agrees: agree.checked, corrected_label: agree.checked ? null : (label.value || null), comment: comment.value}});
        notify("Review saved.", "info");
        onSaved();
      } catch (error) { notify(error.message); } finally { button.disabled = false; }
    });
    panel.append(form);
    return panel;
  }

  async function studyView(id) {
    const study = await api.json(`/api/studies/${id}`);
    const prediction = study.predictions[study.predictions.length - 1] || null;
    const reviews = await api.json(`/api/studies/${id}/feedback`);
    const viewerBox = el("div", {id: "viewer"});
    const history = el("ul", {class: "feedback-list small", id: "reviews"}, reviews.length ? reviews.map((r) => el("li", {},
      el("span", {class: `badge ${r.agrees ? "predicted" : "disagree"}`, text: r.agrees ? "agrees" : `corrected: ${r.corrected_label}`}), " ",
      el("strong", {text: r.reviewer}), el("span", {class: "muted", text: ` · ${fmtDate(r.created_at)}`}),
      r.comment ? el("div", {class: "muted", text: r.comment}) : null)) : el("li", {class: "muted", text: "No reviews yet."}));
    const identity = el("div", {class: "small", id: "identity"});
    if (can("clinician", "admin")) {
      identity.append(el("button", {type: "button", class: "link-button", text: "Show identifying details (audited)", onclick: async () => {
        const who = await api.json(`/api/studies/${id}/patient`);
        identity.replaceChildren(el("dl", {class: "facts"}, el("dt", {text: "Name"}), el("dd", {text: who.name || "—"}),
          el("dt", {text: "Record number"}), el("dd", {text: who.mrn || "—"}), el("dt", {text: "Born"}), el("dd", {text: who.birth_date || "—"})));
      }}));
    }
    page(`Study #${study.id}`,
      el("p", {class: "row muted"}, el("span", {class: "mono", text: study.patient || ""}), el("span", {class: `badge ${study.status}`, text: study.status}),
        el("span", {text: study.kind}), el("span", {text: study.files.map((f) => f.original_name).join(", ")}), el("span", {text: fmtDate(study.created_at)})),
      study.description ? el("p", {text: study.description}) : "",
      el("div", {class: "grid"},
        el("section", {class: "panel"}, viewerBox),
        el("div", {}, findingPanel(study, prediction), feedbackPanel(study, prediction, () => studyView(id)),
          el("section", {class: "panel"}, el("h2", {text: "Reviews"}), history, identity))));
    const ctx = {study, prediction, api};
    const viewer = window.MeddxViewers.pick(ctx);
    viewerBox.dataset.viewer = viewer.name;
    viewer.render(viewerBox, ctx);
  }

  // ---- models -------------------------------------------------------------------------------
  async function modelsView() {
    const models = await api.json("/api/models");
    page("Models", el("div", {class: "panel"}, el("table", {id: "models"},
      el("thead", {}, el("tr", {}, ["Model", "Version", "Task", "Dataset", "Classes", "Test AUC", "Status", "Registered"].map((h) => el("th", {text: h})))),
      el("tbody", {}, models.length ? models.map((m) => el("tr", {class: "clickable", onclick: () => go(`#/models/${m.id}`)},
        el("td", {}, el("a", {href: `#/models/${m.id}`, text: m.name})), el("td", {class: "mono", text: m.version}),
        el("td", {text: m.task}), el("td", {text: m.dataset}), el("td", {text: m.class_names.join(", ")}),
        el("td", {class: "mono", "data-model": m.id, text: "…"}),
        el("td", {}, el("span", {class: `badge ${m.active ? "predicted" : "new"}`, text: m.active ? "active" : "retired"})),
        el("td", {class: "small muted", text: fmtDate(m.registered_at)}))) : el("tr", {}, el("td", {colspan: 8, class: "empty", text: "No models registered."}))))));
    for (const m of models) {
      const detail = await api.json(`/api/models/${m.id}`);
      const auc = ((detail.metrics || {}).test || {}).auc;
      const cell = main.querySelector(`td[data-model="${m.id}"]`);
      if (cell) cell.textContent = typeof auc === "number" ? auc.toFixed(3) : "n/a";
    }
  }

  async function modelView(id) {
    const model = await api.json(`/api/models/${id}`);
    const keys = ["auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "ece", "brier", "n", "dice"];
    const val = (model.metrics || {}).val || {};
    const test = (model.metrics || {}).test || {};
    const show = (v) => (typeof v !== "number" ? (v === undefined ? "—" : String(v)) : Number.isInteger(v) ? String(v) : v.toFixed(4));
    const rows = keys.filter((key) => [val[key], test[key]].some((v) => v !== undefined && typeof v !== "object")).map((key) => {
      const ci = (test.ci || {})[key];
      return el("tr", {}, el("td", {text: key.replaceAll("_", " ")}), el("td", {class: "mono", text: show(val[key])}),
        el("td", {class: "mono", text: show(test[key])}),
        el("td", {class: "mono", text: ci && ci[0] !== null ? `${Number(ci[0]).toFixed(3)}–${Number(ci[1]).toFixed(3)}` : ""}));
    });
    const plots = el("div", {class: "plots", id: "plots"});
    page(`${model.name} @ ${model.version}`,
      el("div", {class: "grid"},
        el("section", {class: "panel"}, el("h2", {text: "Metrics"}), el("table", {class: "metrics"},
          el("thead", {}, el("tr", {}, ["Metric", "Validation", "Test", "Test 95% CI"].map((h) => el("th", {text: h})))), el("tbody", {}, rows))),
        el("section", {class: "panel"}, el("h2", {text: "Model card"}), el("div", {class: "card-text", id: "model-card", text: model.model_card || "No model card."}))),
      el("section", {class: "panel"}, el("h2", {text: "Evaluation report"}), plots));
    for (const name of model.report_files) {
      const figure = el("figure", {}, el("img", {alt: name}), el("figcaption", {text: name.replace(".png", "").replaceAll("_", " ")}));
      plots.append(figure);
      const image = figure.querySelector("img");
      image.addEventListener("load", () => { image.dataset.loaded = "true"; });
      image.src = await api.blob(`/api/models/${id}/report/${encodeURIComponent(name)}`);
    }
    if (!model.report_files.length) plots.append(el("p", {class: "muted", text: "This bundle has no report plots."}));
    plots.dataset.complete = "true";
  }

  // ---- users & audit (admins) -----------------------------------------------------------------
  async function usersView() {
    const list = await api.json("/api/users");
    const form = el("form", {class: "filters panel", id: "user-form"},
      el("div", {}, el("label", {for: "new-username", text: "User name"}), el("input", {type: "text", id: "new-username", name: "username", required: true})),
      el("div", {}, el("label", {for: "new-full", text: "Full name"}), el("input", {type: "text", id: "new-full", name: "full_name"})),
      el("div", {}, el("label", {for: "new-role", text: "Role"}), el("select", {id: "new-role", name: "role"}, ["clinician", "researcher", "admin"].map((r) => el("option", {value: r, text: r})))),
      el("div", {}, el("label", {for: "new-password", text: "Password (10+ characters)"}), el("input", {type: "password", id: "new-password", name: "password", autocomplete: "new-password", required: true})),
      el("div", {}, el("button", {type: "submit", text: "Create user"})));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api.json("/api/users", {method: "POST", json: Object.fromEntries(new FormData(form))});
        notify("User created.", "info"); usersView();
      } catch (error) { notify(error.message); }
    });
    page("Users", form, el("div", {class: "panel"}, el("table", {},
      el("thead", {}, el("tr", {}, ["User", "Name", "Role", "Active", "Last sign-in"].map((h) => el("th", {text: h})))),
      el("tbody", {}, list.map((u) => el("tr", {}, el("td", {text: u.username}), el("td", {text: u.full_name}),
        el("td", {}, el("span", {class: "badge", text: u.role})), el("td", {text: u.active ? "yes" : "no"}),
        el("td", {class: "small muted", text: fmtDate(u.last_login_at)})))))));
  }

  async function auditView(params) {
    const action = params.get("action") || "";
    const events = await api.json(`/api/audit?limit=300${action ? `&action=${encodeURIComponent(action)}` : ""}`);
    const filter = el("select", {id: "audit-action"}, ["", "login", "login_failed", "login_throttled", "study_upload", "study_view", "patient_view",
      "prediction", "feedback", "feedback_export", "user_create", "model_register", "audit_view"].map((a) => el("option", {value: a, text: a || "All actions", selected: a === action})));
    filter.addEventListener("change", () => go(`#/audit${filter.value ? `?action=${filter.value}` : ""}`));
    page("Audit trail", el("div", {class: "panel row"}, el("label", {for: "audit-action", text: "Action"}), filter),
      el("div", {class: "panel"}, el("table", {id: "audit"},
        el("thead", {}, el("tr", {}, ["When", "Who", "Action", "Target", "Details", "Client"].map((h) => el("th", {text: h})))),
        el("tbody", {}, events.map((e) => el("tr", {}, el("td", {class: "small", text: fmtDate(e.at)}), el("td", {text: e.username}),
          el("td", {}, el("span", {class: "badge action", text: e.action})), el("td", {class: "mono", text: `${e.target_type} ${e.target_id}`}),
          el("td", {class: "mono small", text: Object.keys(e.detail).length ? JSON.stringify(e.detail) : ""}), el("td", {class: "small muted", text: e.client})))))));
  }

  // ---- router -------------------------------------------------------------------------------
  async function route() {
    while (objectUrls.length) URL.revokeObjectURL(objectUrls.pop());
    const [path, query] = (location.hash.slice(1) || "/worklist").split("?");
    const params = new URLSearchParams(query || "");
    const parts = path.split("/").filter(Boolean);
    if (!session.token && parts[0] !== "login") { go("#/login"); return; }
    updateChrome(parts[0]);
    try {
      if (parts[0] === "login") { session.clear(); updateChrome(""); loginView(); }
      else if (parts[0] === "worklist") await worklistView(params);
      else if (parts[0] === "upload") await uploadView();
      else if (parts[0] === "study" && parts[1]) await studyView(Number(parts[1]));
      else if (parts[0] === "models" && parts[1]) await modelView(Number(parts[1]));
      else if (parts[0] === "models") await modelsView();
      else if (parts[0] === "users") await usersView();
      else if (parts[0] === "audit") await auditView(params);
      else go("#/worklist");
    } catch (error) {
      if (error.status !== 401) page("Something went wrong", el("p", {class: "muted", text: error.message}));
    }
  }

  document.getElementById("logout").addEventListener("click", async () => {
    try { await api.json("/api/auth/logout", {method: "POST"}); } catch (e) { /* already signed out */ }
    session.clear(); go("#/login");
  });
  window.addEventListener("hashchange", () => { notify(""); route(); });
  route();
})();
