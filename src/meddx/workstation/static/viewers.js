/*
 * meddx viewers: one viewer per kind of finding, chosen by what a prediction contains.
 *
 * Extension points (for new tasks):
 *   MeddxViewers.register({name, matches(ctx), render(element, ctx)})
 *       A viewer for a study + prediction. The last registered viewer that matches wins, so a
 *       task's own viewer overrides the generic ones. ctx = {study, prediction, api}; api.blob(path)
 *       fetches an authenticated image and returns an object URL.
 *   MeddxViewers.registerOverlay({name, matches(ctx), describe(ctx)})
 *       A layer over the image viewer; describe returns {label, kind: "heat" | "labels",
 *       url(sliceIndex), opacity}. Built in: the Grad-CAM heat map and segmentation masks
 *       (artifact "mask", label values drawn in distinct colours, scrolled with the slices).
 *
 * Built-in viewers: image (zoom, window/level, slices, overlays with opacity); ECG strip (outputs
 * "beat_table" {time_s, class, confidence}; the lead is fetched a window at a time from
 * /api/studies/{id}/signal); risk card (per record "explanation.contributions"
 * [{feature, value, shap}]); symptom text (outputs "text" and "explanation.transformer|tfidf.words"
 * [{word, attribution}], words highlighted in the text); series (study kind "series": the series
 * from /api/studies/{id}/signal, the prediction's "saliency" shaded under it); a generic outputs
 * table for anything else.
 * Viewers fire "meddx:rendered" on their element when drawn.
 */
(function () {
  "use strict";
  const viewers = [];
  const overlays = [];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "style") node.style.cssText = value;  // CSSOM: allowed by the CSP
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function register(viewer) { viewers.push(viewer); }
  function registerOverlay(overlay) { overlays.push(overlay); }
  function pick(ctx) {
    for (let i = viewers.length - 1; i >= 0; i -= 1) {
      if (viewers[i].matches(ctx)) return viewers[i];
    }
    return null;
  }
  function overlaysFor(ctx) {
    return overlays.filter((o) => o.matches(ctx)).map((o) => Object.assign({name: o.name}, o.describe(ctx)));
  }

  // Jet-like colour map, 256 entries: blue (low relevance) -> red (high).
  const JET = (function () {
    const table = [];
    for (let i = 0; i < 256; i += 1) {
      const x = i / 255;
      const r = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * x - 3)));
      const g = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * x - 2)));
      const b = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * x - 1)));
      table.push([r * 255, g * 255, b * 255]);
    }
    return table;
  })();
  const LABEL_COLOURS = [[0, 0, 0], [230, 57, 70], [42, 157, 143], [244, 162, 97], [69, 123, 157],
    [233, 196, 106], [131, 56, 236], [58, 134, 255], [255, 0, 110], [6, 214, 160]];

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error("image failed to load"));
      image.src = url;
    });
  }

  async function pixels(api, path) {
    const image = await loadImage(await api.blob(path));
    const canvas = document.createElement("canvas");
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    const context = canvas.getContext("2d", {willReadFrequently: true});
    context.drawImage(image, 0, 0);
    return context.getImageData(0, 0, canvas.width, canvas.height);
  }

  function slider(label, min, max, step, value, oninput, format) {
    const shown = el("span", {class: "value", text: format(value)});
    const input = el("input", {type: "range", min, max, step, value, "aria-label": label});
    input.addEventListener("input", () => { shown.textContent = format(Number(input.value)); oninput(Number(input.value)); });
    return {node: el("div", {}, el("label", {}, label, shown), input), input, shown};
  }

  // ---- image viewer -------------------------------------------------------------------------
  register({
    name: "image",
    matches: (ctx) => Boolean(ctx.study.viewer),
    render: (root, ctx) => {
      const info = ctx.study.viewer;
      const range = info.max - info.min || 1;
      const state = {slice: Math.floor(info.slices / 2), zoom: 1, width: range, level: info.min + range / 2,
        data: null, layers: overlaysFor(ctx).map((layer) => Object.assign({data: null, opacity: layer.opacity ?? 0.45}, layer))};
      const base = el("canvas", {class: "base", "aria-label": "study image"});
      const layerCanvases = state.layers.map((layer) => el("canvas", {class: "overlay", "data-layer": layer.name}));
      const stage = el("div", {class: "stage"}, base, ...layerCanvases);
      const view = el("div", {class: "viewer"}, stage);
      const fit = () => Math.max(1, Math.floor(Math.min(520 / info.height, (view.clientWidth || 700) / info.width)));

      function drawBase() {
        if (!state.data) return;
        const {width, height} = state.data;
        base.width = width; base.height = height;
        const out = new ImageData(width, height);
        const low = state.level - state.width / 2;
        for (let i = 0; i < width * height; i += 1) {
          const native = info.min + (state.data.data[i * 4] / 255) * range;
          const grey = Math.max(0, Math.min(255, ((native - low) / state.width) * 255));
          out.data[i * 4] = out.data[i * 4 + 1] = out.data[i * 4 + 2] = grey;
          out.data[i * 4 + 3] = 255;
        }
        base.getContext("2d").putImageData(out, 0, 0);
        base.dataset.ready = "true";
        resize();
      }
      function drawLayer(index) {
        const layer = state.layers[index];
        const canvas = layerCanvases[index];
        if (!layer.data) { canvas.width = 1; canvas.height = 1; return; }
        const {width, height, data} = layer.data;
        canvas.width = width; canvas.height = height;
        const out = new ImageData(width, height);
        for (let i = 0; i < width * height; i += 1) {
          const value = data[i * 4];
          let colour; let alpha;
          if (layer.kind === "labels") {
            colour = LABEL_COLOURS[value % LABEL_COLOURS.length]; alpha = value ? 255 : 0;
          } else {
            // Opaque where relevance is high, see-through where it is low.
            colour = JET[value]; alpha = Math.min(255, 40 + value * 1.2);
          }
          out.data[i * 4] = colour[0]; out.data[i * 4 + 1] = colour[1]; out.data[i * 4 + 2] = colour[2];
          out.data[i * 4 + 3] = alpha;
        }
        canvas.getContext("2d").putImageData(out, 0, 0);
        canvas.style.opacity = String(layer.opacity);
        canvas.dataset.ready = "true";
        resize();
      }
      function resize() {
        const w = info.width * state.zoom; const h = info.height * state.zoom;
        for (const canvas of [base, ...layerCanvases]) { canvas.style.width = `${w}px`; canvas.style.height = `${h}px`; }
      }
      async function loadSlice() {
        try {
          state.data = await pixels(ctx.api, `/api/studies/${ctx.study.id}/image/${state.slice}.png`);
          drawBase();
        } catch (error) { root.append(el("p", {class: "muted", text: `Image unavailable: ${error.message}`})); }
        await Promise.all(state.layers.map(async (layer, index) => {
          try { layer.data = await pixels(ctx.api, layer.url(state.slice)); } catch (error) { layer.data = null; }
          drawLayer(index);
        }));
        root.dispatchEvent(new CustomEvent("meddx:rendered", {bubbles: true}));
      }

      const controls = el("div", {class: "controls"});
      const zoom = slider("Zoom", 1, 24, 1, 1, (v) => { state.zoom = v; resize(); }, (v) => `${v}x`);
      zoom.input.id = "zoom";
      controls.append(zoom.node);
      const format = (v) => (Math.abs(range) > 50 ? Math.round(v) : Number(v).toFixed(2));
      const wl = slider("Window", range / 100, range * 2, range / 200, range, (v) => { state.width = v; drawBase(); }, format);
      wl.input.id = "window";
      const lv = slider("Level", info.min - range / 2, info.max + range / 2, range / 200, state.level, (v) => { state.level = v; drawBase(); }, format);
      lv.input.id = "level";
      controls.append(wl.node, lv.node);
      if (info.slices > 1) {
        const sl = slider("Slice", 0, info.slices - 1, 1, state.slice, (v) => { state.slice = v; loadSlice(); }, (v) => `${v + 1}/${info.slices}`);
        sl.input.id = "slice";
        controls.append(sl.node);
        view.addEventListener("wheel", (event) => {
          if (!event.shiftKey) return;
          event.preventDefault();
          state.slice = Math.max(0, Math.min(info.slices - 1, state.slice + Math.sign(event.deltaY)));
          sl.input.value = state.slice; sl.shown.textContent = `${state.slice + 1}/${info.slices}`; loadSlice();
        }, {passive: false});
      }
      state.layers.forEach((layer, index) => {
        const op = slider(`${layer.label} opacity`, 0, 1, 0.05, layer.opacity, (v) => {
          layer.opacity = v; layerCanvases[index].style.opacity = String(v);
        }, (v) => `${Math.round(v * 100)}%`);
        op.input.id = `opacity-${layer.name}`;
        controls.append(op.node);
      });
      const reset = el("button", {class: "secondary", type: "button", text: "Reset view", onclick: () => {
        state.width = range; state.level = info.min + range / 2; state.zoom = fit();
        wl.input.value = state.width; lv.input.value = state.level; zoom.input.value = state.zoom;
        wl.shown.textContent = format(state.width); lv.shown.textContent = format(state.level); zoom.shown.textContent = `${state.zoom}x`;
        drawBase();
      }});
      root.append(view, controls, el("div", {class: "row", style: "margin-top:.6rem"}, reset,
        state.layers.some((l) => l.kind === "heat")
          ? el("div", {class: "legend", style: "flex:1"}, "low relevance", el("span", {class: "ramp"}), "high") : null));
      requestAnimationFrame(() => {
        state.zoom = fit(); zoom.input.value = state.zoom; zoom.shown.textContent = `${state.zoom}x`;
        loadSlice();
      });
    },
  });

  registerOverlay({
    name: "heatmap",
    matches: (ctx) => Boolean(ctx.prediction && ctx.prediction.has_heat_map),
    describe: (ctx) => ({label: "Heat map", kind: "heat", opacity: 0.45,
      url: (slice) => `/api/predictions/${ctx.prediction.id}/heatmap/${ctx.study.viewer.slices > 1 ? slice : 0}.png`}),
  });
  registerOverlay({
    name: "mask",
    matches: (ctx) => Boolean(ctx.prediction && (ctx.prediction.artifacts || []).includes("mask")),
    describe: (ctx) => ({label: "Segmentation", kind: "labels", opacity: 0.5,
      url: (slice) => `/api/predictions/${ctx.prediction.id}/labels/mask/${slice}.png`}),
  });

  // ---- generic outputs ------------------------------------------------------------------------
  register({
    name: "outputs",
    matches: () => true,
    render: (root, ctx) => {
      const outputs = (ctx.prediction && ctx.prediction.outputs) || {};
      const rows = Object.entries(outputs).filter(([, v]) => typeof v !== "object");
      root.append(el("p", {class: "muted", text: "No image to show for this study; model outputs:"}),
        el("table", {}, el("tbody", {}, rows.map(([k, v]) => el("tr", {}, el("th", {text: k}), el("td", {class: "mono", text: String(v)}))))));
    },
  });

  // The result that heads a prediction: the outputs themselves, or the first record of a table.
  function headline(outputs) {
    if (!outputs) return {};
    if (outputs.decision === undefined && Array.isArray(outputs.predictions) && outputs.predictions.length) return outputs.predictions[0];
    return outputs;
  }

  // ---- ECG strip ------------------------------------------------------------------------------
  // Beat classes (AAMI): normal, supraventricular, ventricular, fusion, unclassifiable.
  const BEAT_COLOURS = {N: "#1f7a4d", S: "#c25e00", V: "#b3261e", F: "#6a3fb0", Q: "#1f5ea8"};
  const BEAT_NAMES = {N: "normal", S: "supraventricular ectopic", V: "ventricular ectopic", F: "fusion", Q: "unclassifiable"};
  const beatColour = (label) => BEAT_COLOURS[label] || "#5d6b7e";
  function clock(seconds) {
    const s = Math.max(0, seconds);
    return `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;
  }

  // A canvas sized to its box at the screen's pixel ratio, cleared to ECG-paper white; drawing is in
  // CSS pixels. Returns the 2D context and the size in CSS pixels.
  function paperCanvas(canvas, box, cssHeight, fallbackWidth) {
    const ratio = window.devicePixelRatio || 1;
    const cssWidth = Math.max(320, box.clientWidth - 2 || fallbackWidth);
    canvas.width = Math.round(cssWidth * ratio); canvas.height = Math.round(cssHeight * ratio);
    canvas.style.height = `${cssHeight}px`;
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.fillStyle = "#fffafa"; g.fillRect(0, 0, cssWidth, cssHeight);
    return {g, cssWidth, cssHeight};
  }

  register({
    name: "ecg",
    matches: (ctx) => Boolean(ctx.prediction && ctx.prediction.outputs && ctx.prediction.outputs.beat_table),
    render: (root, ctx) => {
      const out = ctx.prediction.outputs;
      const table = out.beat_table;
      const beats = table.time_s.map((t, i) => ({t: Number(t), label: String(table.class[i]), confidence: Number(table.confidence[i])}));
      const summary = out.summary || {};
      const duration = Number(summary.duration_s) || (beats.length ? beats[beats.length - 1].t + 1 : 10);
      const ectopic = beats.filter((b) => b.label !== "N");
      const state = {start: 0, seconds: 10, data: null, ticket: 0};
      const firstEctopic = ectopic[0];
      if (firstEctopic) state.start = Math.max(0, Math.min(firstEctopic.t - state.seconds / 2, duration - state.seconds));

      const canvas = el("canvas", {class: "ecg-canvas", id: "ecg-canvas", role: "img", "aria-label": "ECG strip"});
      const strip = el("div", {class: "ecg", tabindex: "0", "aria-describedby": "ecg-help"}, canvas);
      const where = el("p", {class: "small muted", id: "ecg-window", "aria-live": "polite"});
      const beatRows = el("tbody");
      const counts = summary.counts || {};
      const legend = el("div", {class: "ecg-legend", id: "ecg-legend"}, Object.keys(BEAT_COLOURS).map((name) =>
        el("span", {class: "ecg-key", title: BEAT_NAMES[name]}, el("span", {class: "swatch", style: `background:${beatColour(name)}`}),
          `${name} ${BEAT_NAMES[name]}`, el("strong", {text: ` ${counts[name] ?? 0}`}))));
      const facts = el("dl", {class: "facts ecg-facts"},
        el("dt", {text: "Record"}), el("dd", {text: `${out.record || ""} · lead ${out.lead || "?"} · ${out.sampling_rate_hz || "?"} Hz · ${clock(duration)}`}),
        el("dt", {text: "Beats"}), el("dd", {id: "ecg-beat-count", text: `${summary.beats ?? beats.length} (${out.beat_positions || "beat positions"})`}),
        el("dt", {text: "Heart rate"}), el("dd", {text: summary.heart_rate_bpm !== undefined ? `${summary.heart_rate_bpm} bpm (median RR)` : "n/a"}),
        el("dt", {text: "Ectopic burden"}), el("dd", {text: `S ${summary.S_burden_percent ?? 0}% · V ${summary.V_burden_percent ?? 0}%`}));
      // A model with a second opinion for S beats says how many beats it turned to S here.
      const second = out.second_opinion;
      if (second) facts.append(el("dt", {text: "Second opinion"}), el("dd", {id: "ecg-second-opinion",
        text: `${second.beats_called_S} beat${second.beats_called_S === 1 ? "" : "s"} called S by a second model (record anchored on its regular beats)`}));

      const position = el("input", {type: "range", id: "ecg-position", min: 0, max: Math.max(0, Math.floor(duration - state.seconds)), step: 1,
        value: Math.floor(state.start), "aria-label": "Position in the record (seconds)"});
      const span = el("select", {id: "ecg-seconds", "aria-label": "Strip length"}, [5, 10, 20, 30].map((s) =>
        el("option", {value: s, text: `${s} s`, selected: s === state.seconds})));
      const button = (id, text, label, onclick) => el("button", {type: "button", class: "secondary", id, text, "aria-label": label, onclick});
      const prev = button("ecg-prev", "◀", "Earlier", () => show(state.start - state.seconds));
      const next = button("ecg-next", "▶", "Later", () => show(state.start + state.seconds));
      const jump = button("ecg-next-ectopic", "Next ectopic beat", "Jump to the next ectopic beat", () => {
        const after = ectopic.find((b) => b.t > state.start + state.seconds / 2 + 0.05) || ectopic[0];
        if (after) show(after.t - state.seconds / 2);
      });
      jump.disabled = !ectopic.length;
      position.addEventListener("input", () => show(Number(position.value)));
      span.addEventListener("change", () => { state.seconds = Number(span.value); position.max = Math.max(0, Math.floor(duration - state.seconds)); show(state.start); });
      strip.addEventListener("keydown", (event) => {
        if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
          event.preventDefault();
          show(state.start + (event.key === "ArrowLeft" ? -1 : 1) * state.seconds / 2);
        }
      });

      root.append(el("h2", {text: "ECG strip"}), facts, legend, strip, where,
        el("div", {class: "row ecg-controls"}, prev, next, jump, el("div", {class: "ecg-slider"},
          el("label", {for: "ecg-position", text: "Position"}), position),
          el("div", {}, el("label", {for: "ecg-seconds", text: "Strip"}), span)),
        el("p", {class: "small muted", id: "ecg-help", text: "Filtered lead (0.5–40 Hz) on 25 mm/s paper: small boxes 0.04 s × 0.1 mV. "
          + "Marks above the trace are the classified beats; ectopic beats are shaded. Arrow keys move the strip."}),
        el("h2", {text: "Beats in this strip"}),
        el("table", {class: "small", id: "ecg-beats"}, el("thead", {}, el("tr", {}, ["Time", "Class", "Confidence"].map((h) => el("th", {text: h})))), beatRows));

      function draw() {
        const data = state.data;
        if (!data) return;
        const {g, cssWidth, cssHeight} = paperCanvas(canvas, strip, 240, 900);
        const top = 34; const bottom = cssHeight - 10;
        const values = data.samples;
        let lo = Infinity; let hi = -Infinity;
        for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
        if (!Number.isFinite(lo)) { lo = -1; hi = 1; }
        // At least 2 mV tall, so a flat lead is not blown up into noise.
        const middle = (lo + hi) / 2; const half = Math.max(1, (hi - lo) / 2 * 1.1);
        lo = middle - half; hi = middle + half;
        const x = (t) => ((t - data.start_s) / data.seconds) * cssWidth;
        const y = (v) => bottom - ((v - lo) / (hi - lo)) * (bottom - top);
        // ECG paper: 0.04 s / 0.1 mV small boxes, 0.2 s / 0.5 mV large boxes.
        for (let i = 0, t = data.start_s; t <= data.start_s + data.seconds + 1e-9; i += 1, t = data.start_s + i * 0.04) {
          const large = Math.round(t / 0.04) % 5 === 0;
          g.strokeStyle = large ? "#efb3b3" : "#f8dede"; g.lineWidth = large ? 1 : 0.5;
          g.beginPath(); g.moveTo(x(t), top); g.lineTo(x(t), bottom); g.stroke();
        }
        for (let mv = Math.ceil(lo / 0.1) * 0.1; mv <= hi; mv += 0.1) {
          const large = Math.abs(Math.round(mv * 10) % 5) === 0;
          g.strokeStyle = large ? "#efb3b3" : "#f8dede"; g.lineWidth = large ? 1 : 0.5;
          g.beginPath(); g.moveTo(0, y(mv)); g.lineTo(cssWidth, y(mv)); g.stroke();
        }
        const shown = beats.filter((b) => b.t >= data.start_s && b.t < data.start_s + data.seconds);
        for (const beat of shown) {
          if (beat.label === "N") continue;
          g.fillStyle = beatColour(beat.label); g.globalAlpha = 0.13;
          g.fillRect(x(beat.t - 0.25), top, x(beat.t + 0.4) - x(beat.t - 0.25), bottom - top);
          g.globalAlpha = 1;
        }
        g.strokeStyle = "#1c2430"; g.lineWidth = 1.3; g.beginPath();
        values.forEach((v, i) => {
          const px = x(data.start_s + i / data.sampling_rate_hz);
          if (i) g.lineTo(px, y(v)); else g.moveTo(px, y(v));
        });
        g.stroke();
        g.font = "bold 12px system-ui, sans-serif"; g.textAlign = "center"; g.textBaseline = "top";
        for (const beat of shown) {
          const px = x(beat.t);
          g.fillStyle = beatColour(beat.label);
          g.beginPath(); g.moveTo(px - 5, top - 10); g.lineTo(px + 5, top - 10); g.lineTo(px, top - 3); g.closePath(); g.fill();
          g.fillText(beat.label, px, 4);
        }
        g.fillStyle = "#5d6b7e"; g.font = "11px system-ui, sans-serif"; g.textAlign = "left"; g.textBaseline = "bottom";
        g.fillText(`${data.lead} · ${clock(data.start_s)}`, 6, bottom - 2);
        const abnormal = shown.filter((b) => b.label !== "N").length;
        canvas.setAttribute("aria-label", `ECG strip, lead ${data.lead}, ${clock(data.start_s)} to ${clock(data.start_s + data.seconds)}: `
          + `${shown.length} beats, ${abnormal} ectopic`);
        canvas.dataset.ready = "true";
        canvas.dataset.start = String(data.start_s);
        canvas.dataset.marks = String(shown.length);
        where.textContent = `${clock(data.start_s)} – ${clock(data.start_s + data.seconds)} of ${clock(data.duration_s)} · ${shown.length} beats in view, ${abnormal} ectopic`;
        beatRows.replaceChildren(...(shown.length ? shown.map((b) => el("tr", {class: `beat beat-${b.label}`},
          el("td", {class: "mono", text: clock(b.t)}),
          el("td", {}, el("span", {class: `badge beat-badge${b.label === "N" ? "" : " ectopic"}`, style: `color:${beatColour(b.label)}`, text: `${b.label} ${BEAT_NAMES[b.label] || ""}`})),
          el("td", {class: "mono", text: `${(b.confidence * 100).toFixed(1)}%`})))
          : [el("tr", {}, el("td", {colspan: 3, class: "muted", text: "No beat in this strip."}))]));
      }

      async function show(start) {
        state.start = Math.max(0, Math.min(start, Math.max(0, duration - state.seconds)));
        position.value = Math.floor(state.start);
        const ticket = ++state.ticket;
        try {
          const query = new URLSearchParams({start: state.start.toFixed(3), seconds: String(state.seconds), lead: out.lead || ""});
          const data = await ctx.api.json(`/api/studies/${ctx.study.id}/signal?${query}`);
          if (ticket !== state.ticket) return;  // a newer request was made meanwhile
          state.data = data;
          draw();
          root.dispatchEvent(new CustomEvent("meddx:rendered", {bubbles: true}));
        } catch (error) {
          if (ticket === state.ticket) where.textContent = `Signal unavailable: ${error.message}`;
        }
      }
      if (typeof ResizeObserver === "function") new ResizeObserver(() => draw()).observe(strip);
      requestAnimationFrame(() => show(state.start));
    },
  });

  // ---- risk card (clinical records) -------------------------------------------------------------
  function recordsOf(outputs) {
    if (!outputs) return [];
    const list = Array.isArray(outputs.predictions) ? outputs.predictions : [outputs];
    return list.filter((r) => r && r.explanation && Array.isArray(r.explanation.contributions));
  }
  const signed = (v) => `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(3)}`;

  function diverging(items, describe) {
    // Bars grow right (red) for what pushes towards the finding and left (blue) for what pushes away.
    const peak = Math.max(...items.map((i) => Math.abs(i.value)), 1e-9);
    return el("div", {class: "bars", role: "list"}, items.map((item) => {
      const share = (Math.abs(item.value) / peak) * 50;
      return el("div", {class: "bar-row", role: "listitem", "aria-label": describe(item)},
        el("span", {class: "bar-label", title: item.label}, item.label, item.detail ? el("span", {class: "mono muted", text: ` = ${item.detail}`}) : null),
        el("span", {class: "track", "aria-hidden": "true"}, el("span", {class: item.value >= 0 ? "pos" : "neg", style: `width:${share.toFixed(2)}%`})),
        el("span", {class: "mono", text: signed(item.value)}));
    }));
  }

  register({
    name: "risk-card",
    matches: (ctx) => Boolean(ctx.prediction && recordsOf(ctx.prediction.outputs).length),
    render: (root, ctx) => {
      const records = recordsOf(ctx.prediction.outputs);
      const classes = (ctx.prediction.model && ctx.prediction.model.class_names) || [];
      const card = el("div", {id: "risk-card"});
      const chooser = records.length > 1 ? el("select", {id: "risk-record", "aria-label": "Record"},
        records.map((r, i) => el("option", {value: i, text: `${r.record || `record ${i + 1}`}: ${r.decision}`}))) : null;
      if (chooser) chooser.addEventListener("change", () => show(Number(chooser.value)));
      root.append(el("div", {class: "row"}, el("h2", {text: "Risk card", style: "margin:0"}), el("span", {class: "spacer"}),
        chooser ? el("label", {for: "risk-record", class: "small", text: `${records.length} records in this file`, style: "margin:0"}) : null, chooser), card);

      function show(index) {
        const record = records[index];
        const explanation = record.explanation;
        const probs = record.probabilities || {};
        // Binary: the risk of the positive class (the second one); else the decided class.
        const positive = classes.length === 2 ? classes[1] : record.decision;
        const risk = Number(probs[positive] ?? 0);
        const items = explanation.contributions.slice(0, 12).map((c) => ({label: c.feature, detail: c.value === null || c.value === "" ? "not measured" : String(c.value), value: Number(c.shap)}));
        const hidden = explanation.contributions.length - items.length;
        const warnings = (record.warnings || []).filter(Boolean);
        card.replaceChildren(
          el("p", {class: "small muted", text: record.record || ""}),
          el("div", {class: "risk-head"},
            el("div", {}, el("div", {class: "small muted", text: `Probability of ${positive}`}),
              el("div", {class: "risk-value", id: "risk-value", text: `${(risk * 100).toFixed(1)}%`})),
            el("div", {class: "risk-gauge", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": (risk * 100).toFixed(1),
              "aria-label": `Probability of ${positive}`}, el("span", {style: `width:${(risk * 100).toFixed(1)}%`}),
              record.threshold !== undefined ? el("i", {class: "threshold", title: `decision threshold ${Number(record.threshold).toFixed(3)}`,
                style: `left:${(Number(record.threshold) * 100).toFixed(1)}%`}) : null),
            el("div", {}, el("div", {class: "small muted", text: "Decision"}), el("span", {class: "badge predicted", id: "risk-decision", text: record.decision}))),
          el("h3", {text: "What drove this estimate"}),
          el("p", {class: "small muted", text: `${explanation.method || "contributions"} on the ${explanation.output || "model output"}: `
            + `base ${Number(explanation.base_value).toFixed(2)} → this patient ${Number(explanation.output_value).toFixed(2)}. Red raises, blue lowers it.`}),
          diverging(items, (i) => `${i.label} = ${i.detail}: ${i.value >= 0 ? "raises" : "lowers"} by ${Math.abs(i.value).toFixed(3)}`),
          hidden > 0 ? el("p", {class: "small muted", text: `${hidden} smaller contributions not shown.`}) : "",
          warnings.length ? el("ul", {class: "warnings small"}, warnings.map((w) => el("li", {text: w}))) : "");
        card.dataset.record = String(index);
        root.dispatchEvent(new CustomEvent("meddx:rendered", {bubbles: true}));
      }
      show(0);
    },
  });

  // ---- symptom text -----------------------------------------------------------------------------
  const TEXT_METHODS = {transformer: "Transformer: integrated gradients", tfidf: "TF-IDF: exact split of the linear score"};
  function textResultOf(outputs) {
    const explanation = outputs && outputs.explanation;
    return outputs && typeof outputs.text === "string" && explanation && (explanation.transformer || explanation.tfidf) ? outputs : null;
  }
  // Lower-case, accent-free copy of a text with the index of every folded character in the original,
  // so that words as the TF-IDF model saw them ("fievre") are found in the text ("Fièvre").
  function fold(text) {
    let folded = ""; const origin = [];
    for (let i = 0; i < text.length; i += 1) {
      const part = text[i].normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();
      for (let k = 0; k < part.length; k += 1) { folded += part[k]; origin.push(i); }
    }
    origin.push(text.length);
    return {folded, origin};
  }
  const WORDISH = /[\p{L}\p{N}]/u;
  function locate(text, words) {
    const {folded, origin} = fold(text);
    const found = []; let cursor = 0;
    for (const word of words) {
      const needle = fold(String(word.word).trim()).folded;
      if (!needle || !/[\p{L}\p{N}]/u.test(needle)) continue;  // punctuation is not highlighted
      // Whole words only: "a" must not light up the "a" inside "rash".
      let at = folded.indexOf(needle, cursor);
      while (at >= 0 && (WORDISH.test(folded[at - 1] || " ") && WORDISH.test(needle[0])
        || WORDISH.test(folded[at + needle.length] || " ") && WORDISH.test(needle[needle.length - 1]))) {
        at = folded.indexOf(needle, at + 1);
      }
      if (at < 0) continue;
      found.push({start: origin[at], end: origin[at + needle.length], word: text.slice(origin[at], origin[at + needle.length]), value: Number(word.attribution)});
      cursor = at + needle.length;
    }
    return found;
  }

  register({
    name: "text",
    matches: (ctx) => Boolean(ctx.prediction && textResultOf(ctx.prediction.outputs)),
    render: (root, ctx) => {
      const result = textResultOf(ctx.prediction.outputs);
      const methods = Object.keys(TEXT_METHODS).filter((m) => result.explanation[m]);
      const state = {method: methods.includes(result.model_kind) ? result.model_kind : methods[0]};
      const passage = el("p", {class: "text-explained", id: "text-explained", lang: "en"});
      const top = el("div", {id: "text-top-words"});
      const note = el("p", {class: "small muted", id: "text-method"});
      const picker = methods.length > 1 ? el("div", {class: "choice", role: "radiogroup", "aria-label": "Explanation method"}, methods.map((m) => {
        const input = el("input", {type: "radio", name: "text-method", value: m, id: `text-method-${m}`, checked: m === state.method});
        input.addEventListener("change", () => { state.method = m; show(); });
        return el("label", {for: `text-method-${m}`}, input, TEXT_METHODS[m]);
      })) : null;
      root.append(el("h2", {text: "Symptom text"}), picker || "", passage,
        el("div", {class: "legend text-legend"}, el("mark", {class: "attr", style: "background:rgba(192,57,43,.55)", text: "for"}),
          `pushed towards ${result.decision}`, el("mark", {class: "attr", style: "background:rgba(46,134,193,.55)", text: "against"}), "pushed away"),
        note, el("h3", {text: "Words that weighed most"}), top);

      function show() {
        const explanation = result.explanation[state.method];
        const words = (explanation.words || []).map((w) => ({word: String(w.word), attribution: Number(w.attribution)}));
        const spans = locate(result.text, words);
        const peak = Math.max(...spans.map((s) => Math.abs(s.value)), 1e-9);
        const nodes = []; let cursor = 0;
        for (const span of spans) {
          if (span.start > cursor) nodes.push(result.text.slice(cursor, span.start));
          const share = Math.abs(span.value) / peak;
          const colour = span.value >= 0 ? "192,57,43" : "46,134,193";
          const strong = share >= 0.35;
          nodes.push(el("mark", {class: `attr ${span.value >= 0 ? "pos" : "neg"}${strong ? " strong" : ""}`, "data-weight": span.value.toFixed(4),
            style: `background:rgba(${colour},${(0.08 + 0.62 * share).toFixed(3)})`,
            title: `${signed(span.value)} ${span.value >= 0 ? "towards" : "away from"} ${result.decision}`}, span.word));
          cursor = span.end;
        }
        if (cursor < result.text.length) nodes.push(result.text.slice(cursor));
        passage.replaceChildren(...nodes);
        passage.dataset.method = state.method;
        passage.dataset.highlighted = String(spans.length);
        // One entry per distinct word (a word said twice counts its total).
        const totals = new Map();
        for (const span of spans) { const key = span.word.toLowerCase(); totals.set(key, (totals.get(key) || 0) + span.value); }
        const ranked = [...totals.entries()].map(([label, value]) => ({label, value})).sort((a, b) => Math.abs(b.value) - Math.abs(a.value)).slice(0, 8);
        top.replaceChildren(ranked.length ? diverging(ranked, (i) => `${i.label}: ${i.value >= 0 ? "towards" : "away from"} ${result.decision} by ${Math.abs(i.value).toFixed(3)}`)
          : el("p", {class: "muted", text: "No word of the text is known to this model."}));
        note.textContent = `${explanation.method || TEXT_METHODS[state.method]}; attributions to the decided class, ${result.decision}.`
          + (explanation.convergence_delta !== undefined ? ` Convergence gap ${Number(explanation.convergence_delta).toFixed(3)}.` : "");
        root.dispatchEvent(new CustomEvent("meddx:rendered", {bubbles: true}));
      }
      show();
    },
  });
  // ---- fixed-length series (UCR heartbeats) ----------------------------------------------------
  // The series as uploaded (from /api/studies/{id}/signal, read the way the model read it) with the
  // prediction's saliency (integrated gradients or occlusion, 0-1 per sample) shaded under it.
  register({
    name: "series",
    matches: (ctx) => ctx.study.kind === "series",
    render: (root, ctx) => {
      const head = headline(ctx.prediction && ctx.prediction.outputs);
      const saliency = Array.isArray(head.saliency) ? head.saliency.map(Number) : null;
      // The predictor names its method ("integrated gradients (...)" for networks, "occlusion
      // (...)" for MiniRocket); older predictions carry none and were integrated gradients.
      const described = (ctx.prediction && ctx.prediction.outputs && ctx.prediction.outputs.explanation_method) || "integrated gradients";
      const method = described.split(" (")[0];
      const canvas = el("canvas", {class: "series-canvas", id: "series-canvas", role: "img", "aria-label": "Series"});
      const strip = el("div", {class: "ecg series"}, canvas);
      const facts = el("dl", {class: "facts", id: "series-facts"});
      const note = el("p", {class: "small muted", id: "series-help"});
      root.append(el("h2", {text: "Series"}), facts, strip, note);
      const state = {data: null};

      function draw() {
        const data = state.data;
        if (!data) return;
        const values = data.samples.map(Number);
        const n = values.length;
        const {g, cssWidth, cssHeight} = paperCanvas(canvas, strip, 280, 700);
        const left = 8; const right = cssWidth - 8; const top = 12; const bottom = 196;
        const bandTop = 212; const bandBottom = cssHeight - 18;
        let lo = Math.min(...values); let hi = Math.max(...values);
        if (!(hi > lo)) { lo -= 1; hi += 1; }
        const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
        const x = (i) => left + (n > 1 ? i / (n - 1) : 0.5) * (right - left);
        const y = (v) => bottom - ((v - lo) / (hi - lo)) * (bottom - top);
        const step = (right - left) / Math.max(1, n - 1);
        g.strokeStyle = "#f3d0d0"; g.lineWidth = 0.5;
        for (let i = 0; i < n; i += 8) { g.beginPath(); g.moveTo(x(i), top); g.lineTo(x(i), bottom); g.stroke(); }
        if (saliency) {
          // Under the trace: each sample's column tinted by its saliency.
          saliency.forEach((s, i) => {
            g.fillStyle = `rgba(214,39,40,${(0.32 * Math.max(0, Math.min(1, s))).toFixed(3)})`;
            g.fillRect(x(i) - step / 2, top, step, bottom - top);
          });
          // And as a filled trace of its own below the series.
          g.fillStyle = "rgba(214,39,40,0.55)"; g.beginPath(); g.moveTo(x(0), bandBottom);
          saliency.forEach((s, i) => g.lineTo(x(i), bandBottom - Math.max(0, Math.min(1, s)) * (bandBottom - bandTop)));
          g.lineTo(x(n - 1), bandBottom); g.closePath(); g.fill();
          g.strokeStyle = "#b3261e"; g.lineWidth = 1; g.beginPath(); g.moveTo(left, bandBottom); g.lineTo(right, bandBottom); g.stroke();
        }
        g.strokeStyle = "#1c2430"; g.lineWidth = 1.6; g.beginPath();
        values.forEach((v, i) => { if (i) g.lineTo(x(i), y(v)); else g.moveTo(x(i), y(v)); });
        g.stroke();
        g.fillStyle = "#5d6b7e"; g.font = "11px system-ui, sans-serif"; g.textAlign = "left"; g.textBaseline = "bottom";
        g.fillText(saliency ? `saliency (${method})` : "no saliency: explanations were off", left, bandTop - 2);
        g.textBaseline = "top";
        g.fillText("sample 0", left, cssHeight - 14);
        g.textAlign = "right"; g.fillText(`sample ${n - 1}`, right, cssHeight - 14);
        const peak = saliency ? saliency.indexOf(Math.max(...saliency)) : -1;
        canvas.setAttribute("aria-label", `Series of ${n} values classified ${head.decision || ""}`
          + (peak >= 0 ? `; the most salient samples are around ${peak}` : ""));
        canvas.dataset.ready = "true";
        canvas.dataset.points = String(n);
        canvas.dataset.saliency = saliency ? "true" : "false";
        canvas.dataset.peak = String(peak);
      }

      function showFacts(data) {
        const layout = {column: "one column of numbers", row: "one row of numbers", ucr: "a UCR line (label first)"}[data.layout] || data.layout;
        const rows = [["File", `${data.file} · ${layout}`], ["Length", `${data.length} values (the model's length)`]];
        if (head.reference !== undefined) rows.push(["Label in the file", String(head.reference)]);
        if (saliency && saliency.some((s) => s > 0)) {
          // The span of samples whose saliency is at least half the peak: what drove the class.
          const strong = saliency.map((s, i) => [s, i]).filter(([s]) => s >= 0.5).map(([, i]) => i);
          rows.push(["Most salient", `${strong.length} samples at ≥ half the peak, between ${Math.min(...strong)} and ${Math.max(...strong)}; peak at ${saliency.indexOf(Math.max(...saliency))}`]);
        }
        facts.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {text: k}), el("dd", {text: v})]));
        note.textContent = saliency
          ? `Shading: how much each sample moved the model towards ${head.decision} (${method}, |attribution| scaled to the largest).`
          : "The series as the model read it.";
      }

      (async () => {
        try {
          state.data = await ctx.api.json(`/api/studies/${ctx.study.id}/signal`);
          showFacts(state.data);
          draw();
          root.dispatchEvent(new CustomEvent("meddx:rendered", {bubbles: true}));
        } catch (error) { note.textContent = `Series unavailable: ${error.message}`; }
      })();
      if (typeof ResizeObserver === "function") new ResizeObserver(() => draw()).observe(strip);
    },
  });
  // An image study is best shown by the image viewer even if other outputs exist.
  register(viewers.find((v) => v.name === "image"));

  window.MeddxViewers = {register, registerOverlay, pick, overlaysFor, el, headline};
})();
