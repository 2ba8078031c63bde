// Publisher viewer: talks only to this API (same origin); Leaflet is served by the API too (no CDN, no basemap).
(function () {
  "use strict";

  const root = document.body.dataset.apiRoot || "";
  const $ = (id) => document.getElementById(id);
  const els = {
    form: $("source-form"), provider: $("provider"), sample: $("sample"), url: $("url"),
    render: $("render"), min: $("rescale-min"), max: $("rescale-max"), colormap: $("colormap"), apply: $("apply"),
    status: $("status"), info: $("info"), stats: $("statistics"), tileUrl: $("tile-url"), tilejsonUrl: $("tilejson-url"),
  };

  const map = L.map("map", { center: [0, 0], zoom: 2, worldCopyJump: true });
  map.attributionControl.setPrefix(false);
  let layer = null;
  let current = null; // {url, provider}

  function setStatus(text, isError) {
    els.status.textContent = text;
    els.status.className = isError ? "error" : "";
  }

  async function getJSON(path) {
    const response = await fetch(root + path, { headers: { Accept: "application/json" } });
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const detail = body && (body.detail || body.message);
      throw new Error(typeof detail === "string" ? detail : `${response.status} ${response.statusText}`);
    }
    return body;
  }

  function sourceParams() {
    const params = new URLSearchParams({ url: current.url });
    if (current.provider) params.set("provider", current.provider);
    return params;
  }

  function renderParams() {
    const params = sourceParams();
    const lo = els.min.value.trim(), hi = els.max.value.trim();
    if (lo !== "" && hi !== "") params.set("rescale", `${lo},${hi}`);
    if (els.colormap.value) params.set("colormap_name", els.colormap.value);
    return params;
  }

  function option(value, label) {
    const opt = document.createElement("option");
    opt.value = value;
    opt.textContent = label;
    return opt;
  }

  async function loadProviders() {
    const body = await getJSON("/providers");
    const list = Array.isArray(body) ? body : (body && body.providers) || [];
    for (const p of list) {
      const name = typeof p === "string" ? p : p.name;
      const title = typeof p === "string" ? p : (p.title || p.name);
      els.provider.appendChild(option(name, title === name ? name : `${title} (${name})`));
    }
  }

  async function loadSamples() {
    const samples = await getJSON("/viewer/samples");
    for (const s of samples) {
      const opt = option(s.url, s.title || s.url);
      opt.dataset.provider = s.provider || "";
      els.sample.appendChild(opt);
    }
    if (!samples.length) els.sample.disabled = true;
  }

  function pickDefaultRescale(stats) {
    const first = stats && Object.values(stats)[0];
    if (!first) return;
    els.min.value = String(first.min);
    els.max.value = String(first.max);
  }

  async function showSource(event) {
    if (event) event.preventDefault();
    const url = els.url.value.trim();
    if (!url) { setStatus("Enter an s3:// URL or choose a sample.", true); return; }
    current = { url, provider: els.provider.value };
    setStatus("Reading info and statistics…");
    els.render.disabled = true;
    try {
      const [info, stats] = await Promise.all([
        getJSON(`/cog/info?${sourceParams()}`),
        getJSON(`/cog/statistics?${sourceParams()}`),
      ]);
      els.info.textContent = JSON.stringify(info, null, 2);
      els.stats.textContent = JSON.stringify(stats, null, 2);
      pickDefaultRescale(stats);
      els.render.disabled = false;
      await showTiles(true);
    } catch (err) {
      setStatus(err.message, true);
    }
  }

  async function showTiles(fit) {
    const tilejsonPath = `/cog/WebMercatorQuad/tilejson.json?${renderParams()}`;
    try {
      const tj = await getJSON(tilejsonPath);
      const [w, s, e, n] = tj.bounds;
      const bounds = L.latLngBounds([s, w], [n, e]);
      if (layer) map.removeLayer(layer);
      // `bounds` keeps Leaflet from asking for tiles outside the image (which the API answers with 404).
      layer = L.tileLayer(tj.tiles[0], {
        bounds: bounds, maxNativeZoom: tj.maxzoom, maxZoom: Math.max(tj.maxzoom + 4, 18), className: "cog-layer",
      });
      layer.on("tileerror", () => setStatus("Some tiles failed to load.", true));
      layer.addTo(map);
      if (fit) map.fitBounds(bounds);
      els.tileUrl.value = tj.tiles[0];
      els.tilejsonUrl.value = new URL(root + tilejsonPath, window.location.href).href;
      setStatus(`Showing ${current.url}${current.provider ? " as " + current.provider : ""}.`);
    } catch (err) {
      setStatus(err.message, true);
    }
  }

  async function copyField(button) {
    const input = $(button.dataset.target);
    if (!input.value) return;
    try {
      await navigator.clipboard.writeText(input.value);
    } catch (_) {
      input.select();
      document.execCommand("copy");
    }
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1200);
  }

  els.sample.addEventListener("change", () => {
    const opt = els.sample.selectedOptions[0];
    if (!opt || !opt.value) return;
    els.url.value = opt.value;
    if (opt.dataset.provider) els.provider.value = opt.dataset.provider;
    els.min.value = els.max.value = "";
    showSource();
  });
  els.form.addEventListener("submit", showSource);
  els.apply.addEventListener("click", () => showTiles(false));
  els.colormap.addEventListener("change", () => { if (current) showTiles(false); });
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", () => copyField(button));
  }

  Promise.all([loadProviders(), loadSamples()]).catch((err) => setStatus(err.message, true));
})();
