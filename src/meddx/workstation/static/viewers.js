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
 * Built-in viewers: image (zoom, window/level, slices, overlays with opacity), ECG strip (outputs
 * "signal" and optional "beats" [{sample, label}], "sampling_rate"), risk card (explanation
 * "contributions" [{feature, value, shap}]), and a generic outputs table for anything else.
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

  // ---- ECG strip ------------------------------------------------------------------------------
  register({
    name: "ecg",
    matches: (ctx) => Boolean(ctx.prediction && ctx.prediction.outputs && Array.isArray(ctx.prediction.outputs.signal)),
    render: (root, ctx) => {
      const out = ctx.prediction.outputs;
      const signal = out.signal.map(Number);
      const rate = Number(out.sampling_rate || 360);
      const canvas = el("canvas", {width: 1200, height: 220, "aria-label": "ECG strip"});
      root.append(el("div", {class: "ecg"}, canvas), el("p", {class: "small muted",
        text: `${(signal.length / rate).toFixed(1)} s at ${rate} Hz; marks: detected beats and their classes`}));
      const g = canvas.getContext("2d");
      g.strokeStyle = "#f3c7c7"; g.lineWidth = 1;
      for (let x = 0; x < canvas.width; x += canvas.width / Math.max(1, signal.length / rate * 5)) { g.beginPath(); g.moveTo(x, 0); g.lineTo(x, canvas.height); g.stroke(); }
      const lo = Math.min(...signal); const hi = Math.max(...signal) || lo + 1;
      const y = (v) => canvas.height - 20 - ((v - lo) / (hi - lo || 1)) * (canvas.height - 40);
      g.strokeStyle = "#1c2430"; g.lineWidth = 1.2; g.beginPath();
      signal.forEach((v, i) => { const x = (i / (signal.length - 1)) * canvas.width; if (i) g.lineTo(x, y(v)); else g.moveTo(x, y(v)); });
      g.stroke();
      g.font = "12px system-ui"; g.textAlign = "center";
      for (const beat of out.beats || []) {
        const x = (Number(beat.sample) / (signal.length - 1)) * canvas.width;
        const abnormal = beat.label && beat.label !== "N";
        g.fillStyle = abnormal ? "#b3261e" : "#1f7a4d";
        g.fillRect(x - 1, 4, 2, 10); g.fillText(String(beat.label || ""), x, 26);
      }
    },
  });

  // ---- risk card --------------------------------------------------------------------------------
  function contributionsOf(outputs) {
    if (!outputs) return null;
    const first = Array.isArray(outputs.predictions) ? outputs.predictions[0] : outputs;
    return first && first.explanation && Array.isArray(first.explanation.contributions) ? first : null;
  }
  register({
    name: "risk-card",
    matches: (ctx) => Boolean(ctx.prediction && contributionsOf(ctx.prediction.outputs)),
    render: (root, ctx) => {
      const record = contributionsOf(ctx.prediction.outputs);
      const items = record.explanation.contributions.slice(0, 12);
      const peak = Math.max(...items.map((c) => Math.abs(Number(c.shap))), 1e-9);
      root.append(el("h2", {text: `Risk card${record.record ? `: ${record.record}` : ""}`}),
        el("p", {class: "small muted", text: `${record.explanation.method || "contributions"}; red raises, blue lowers ${record.explanation.output || "the score"}`}),
        el("div", {class: "bars"}, items.map((c) => {
          const share = (Math.abs(Number(c.shap)) / peak) * 50;
          return el("div", {class: "bar-row"}, el("span", {text: `${c.feature} = ${c.value}`}),
            el("span", {class: "track"}, el("span", {class: Number(c.shap) >= 0 ? "pos" : "neg", style: `width:${share}%`})),
            el("span", {class: "mono", text: Number(c.shap).toFixed(3)}));
        })));
    },
  });
  // An image study is best shown by the image viewer even if other outputs exist.
  register(viewers.find((v) => v.name === "image"));

  window.MeddxViewers = {register, registerOverlay, pick, overlaysFor, el};
})();
