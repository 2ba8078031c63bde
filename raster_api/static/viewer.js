// Publisher viewer: talks only to this API (same origin); Leaflet is served by the API too (no CDN, no basemap).
// The view (provider, url, bands/expression, rescale, colormap) lives in the page's query string, with the API's own
// parameter names, so a copied link reopens it and back/forward walk through what was looked at.
// Restricted providers need a bearer token, pasted in the sign-in box (shown when the API has an issuer). The token
// lives in sessionStorage only: never in the address bar or a shared link (history and links outlive the token and
// travel to other people), never in localStorage (it would outlive the tab), never on the console.
(function () {
  "use strict";

  const root = document.body.dataset.apiRoot || "";
  const $ = (id) => document.getElementById(id);
  const els = {
    form: $("source-form"), provider: $("provider"), sample: $("sample"), url: $("url"), status: $("status"),
    render: $("render"), bands: $("bands"), expressionRow: $("expression-row"), expression: $("expression"),
    min: $("rescale-min"), max: $("rescale-max"), colormap: $("colormap"), apply: $("apply"),
    strip: $("colormap-strip"), stripMin: $("strip-min"), stripMax: $("strip-max"),
    validation: $("validation"), verdict: $("verdict"), messages: $("cog-messages"), advice: $("cog-advice"),
    facts: document.querySelector("#facts tbody"), histograms: $("histograms"), histogramList: $("histogram-list"),
    info: $("info"), stats: $("statistics"), validate: $("validate"),
    shareUrl: $("share-url"), tileUrl: $("tile-url"), tilejsonUrl: $("tilejson-url"), tokenHint: $("tile-token-hint"),
    signin: $("signin"), signinForm: $("signin-form"), token: $("token"), signedIn: $("signed-in"),
    signedInAs: $("signed-in-as"), signout: $("signout"), signinStatus: $("signin-status"), variable: $("variable"),
  };
  const STATE_KEYS = ["url", "provider", "variable", "bidx", "expression", "rescale", "colormap_name"];
  const DEFAULT_COLORMAP = "viridis";
  const TOKEN_KEY = "raster-api-token";

  let providers = [];
  let samples = [];
  let source = null; // {url, provider, info, stats, footprint} of the image on the map
  let view = null; // the state being shown
  let layer = null;
  let outline = null;
  let loadToken = 0;
  let lastColormap = DEFAULT_COLORMAP; // the colormap chosen for one-band views, kept across RGB views and sources
  const colormaps = new Map();

  // ---- map: no basemap, so give it references of its own (outline, graticule, coordinates, scale) ----------------
  const map = L.map("map", { center: [20, 0], zoom: 2, worldCopyJump: true, zoomControl: false });
  L.control.zoom({ position: "topright" }).addTo(map); // the graticule's latitude labels sit on the left edge
  map.attributionControl.setPrefix(false);
  L.control.scale({ imperial: false }).addTo(map);
  const graticule = L.layerGroup().addTo(map);
  const coords = L.control({ position: "topright" });
  coords.onAdd = () => {
    const div = L.DomUtil.create("div", "coords");
    div.textContent = "move over the map";
    return div;
  };
  coords.addTo(map);
  map.on("mousemove", (e) => { coords.getContainer().textContent = formatLatLng(e.latlng); });

  function formatLatLng(ll) {
    const lat = ll.lat, lng = ((ll.lng + 540) % 360) - 180;
    return `${Math.abs(lat).toFixed(4)}° ${lat >= 0 ? "N" : "S"}, ${Math.abs(lng).toFixed(4)}° ${lng >= 0 ? "E" : "W"}`;
  }

  function drawGraticule() {
    graticule.clearLayers();
    const b = map.getBounds();
    const span = Math.max(b.getNorth() - b.getSouth(), 1e-6);
    const steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30];
    const step = steps.find((s) => span / s <= 8) || 30;
    const digits = (String(step).split(".")[1] || "").length;
    const south = Math.max(-85, b.getSouth()), north = Math.min(85, b.getNorth());
    const west = b.getWest(), east = b.getEast();
    const line = { color: "#8a94a6", weight: 1, opacity: 0.6, interactive: false, className: "graticule" };
    const label = (latlng, text, cls) => L.marker(latlng, {
      interactive: false, keyboard: false,
      icon: L.divIcon({ className: `graticule-label ${cls}`, html: text, iconSize: null }),
    });
    for (let lat = Math.ceil(south / step) * step; lat <= north; lat += step) {
      graticule.addLayer(L.polyline([[lat, west], [lat, east]], line));
      graticule.addLayer(label([lat, west], `${Math.abs(lat).toFixed(digits)}°${lat >= 0 ? "N" : "S"}`, "lat"));
    }
    if ((east - west) / step > 40) return;
    for (let lng = Math.ceil(west / step) * step; lng <= east; lng += step) {
      const wrapped = ((lng + 540) % 360) - 180;
      graticule.addLayer(L.polyline([[south, lng], [north, lng]], line));
      graticule.addLayer(label([south, lng], `${Math.abs(wrapped).toFixed(digits)}°${wrapped >= 0 ? "E" : "W"}`, "lng"));
    }
  }
  map.on("moveend", drawGraticule);
  drawGraticule();

  // ---- API access ------------------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, detail, retryAfter, authenticate) {
      super(detail);
      this.status = status;
      this.detail = detail;
      this.retryAfter = retryAfter;
      // RFC 6750: a token that was sent and refused (expired, wrong issuer...) says `error="invalid_token"`; a
      // missing one says only `Bearer realm=...`. The first needs a new token, the second a sign-in.
      this.invalidToken = /error="invalid_token"/.test(authenticate || "");
    }
  }

  // Without a sign-in box (no issuer) nothing is sent, even if another page of this origin left a token behind.
  function storedToken() { return els.signin ? sessionStorage.getItem(TOKEN_KEY) : null; }

  function withToken(tileUrl) {
    const t = storedToken();
    // Leaflet loads tiles as <img>, which cannot send a header. String concatenation, not URL(): URL() would
    // percent-encode the template's {z}/{x}/{y}.
    return t ? `${tileUrl}${tileUrl.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(t)}` : tileUrl;
  }

  function detailText(body, response) {
    const detail = body && (body.detail || body.message);
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) { // FastAPI validation errors
      return detail.map((d) => `${(d.loc || []).filter((p) => p !== "query").join(".")}: ${d.msg}`).join("; ");
    }
    return `${response.status} ${response.statusText}`;
  }

  // With `payload`, a POST of it as JSON.
  async function getJSON(path, payload) {
    const headers = { Accept: "application/json" };
    const t = storedToken();
    if (t) headers.Authorization = `Bearer ${t}`;
    const init = { headers };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      Object.assign(init, { method: "POST", body: JSON.stringify(payload) });
    }
    const response = await fetch(root + path, init);
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      throw new ApiError(response.status, detailText(body, response), response.headers.get("Retry-After"),
        response.headers.get("WWW-Authenticate"));
    }
    return body;
  }

  // ---- state <-> query string ------------------------------------------------------------------------------------
  function readState() {
    const q = new URLSearchParams(window.location.search);
    return {
      url: q.get("url") || "",
      provider: q.get("provider") || "",
      variable: (els.variable && q.get("variable")) || "",
      bidx: q.getAll("bidx").filter(Boolean),
      expression: q.get("expression") || "",
      rescale: q.get("rescale") || "",
      colormap_name: q.get("colormap_name") || "",
    };
  }

  function stateQuery(state) {
    const q = new URLSearchParams();
    for (const key of STATE_KEYS) {
      const value = state[key];
      if (Array.isArray(value)) value.forEach((v) => q.append(key, v));
      else if (value) q.set(key, value);
    }
    return q;
  }

  function sameSource(a, b) {
    return a && b && a.url === b.url && a.provider === b.provider && a.variable === b.variable;
  }

  // A variable of a NetCDF, HDF5 or Zarr object is read through /md/ (titiler.xarray); a GeoTIFF through /cog/.
  function routes(state) { return state.variable ? "/md" : "/cog"; }

  function remember(state, replace) {
    const target = `${window.location.pathname}?${stateQuery(state)}`;
    if (target === `${window.location.pathname}${window.location.search}`) return;
    if (replace) history.replaceState(null, "", target);
    else history.pushState(null, "", target);
  }

  // ---- status and errors in words --------------------------------------------------------------------------------
  function setStatus(text, kind) {
    els.status.replaceChildren(document.createTextNode(text));
    els.status.className = kind || "";
  }

  function globMatch(pattern, name) {
    const re = new RegExp("^" + pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*") + "$");
    return re.test(name);
  }

  function ownerOf(bucket) {
    let best = null, bestScore = -1;
    for (const p of providers) {
      for (const pattern of p.buckets || []) {
        if (!globMatch(pattern, bucket)) continue;
        const score = pattern.includes("*") ? pattern.length : 1e6; // exact beats glob, longer glob beats shorter
        if (score > bestScore) { best = p; bestScore = score; }
      }
    }
    return best;
  }

  function advice(err, state) {
    const bucket = (state.url.match(/^s3:\/\/([^/]+)/) || [])[1] || "";
    const who = state.provider ? `provider '${state.provider}'` : "the bucket's owner";
    // The API names the provider it refused (also when the form left it to the bucket's owner).
    const named = state.provider || (err.detail.match(/^provider '([^']+)'/) || [])[1] || "";
    const listed = providers.some((p) => p.name === named);
    if (err.status === 401 && err.invalidToken) {
      return "The API no longer accepts your sign-in: sign out, then sign in again with a new token.";
    }
    if (err.status === 401) {
      const whom = named ? `provider '${named}'` : who;
      return els.signin ? `Sign-in needed: sign in above as a user who may read ${whom}.` : "This API needs a signed-in caller.";
    }
    if (err.status === 403 && storedToken() && named && !listed) {
      // Restricted providers are listed only to those who may read them: a 403 for one that is not listed is the
      // caller's group, not the provider's access to the bucket.
      return `You are signed in${signedInName() ? ` as ${signedInName()}` : ""}, but may not read provider ` +
        `'${named}'. Ask whoever runs this API to add you to one of its groups, or sign in as someone who is.`;
    }
    if (err.status === 403) {
      const owner = bucket && ownerOf(bucket);
      if (owner && owner.name !== state.provider) {
        return `Bucket '${bucket}' is served by provider '${owner.name}' (${owner.title}): choose it as Provider, ` +
          "or leave Provider on “(owner of the bucket)”.";
      }
      return `${who} may not read this object. Ask whoever runs this API to grant it, or check the URL.`;
    }
    if (err.status === 404) {
      return `Nothing was found at ${state.url} as ${who}. Check the bucket and the key (both are case-sensitive) ` +
        "and that the upload finished.";
    }
    if (err.status === 503) {
      const wait = err.retryAfter ? `in ${err.retryAfter} s` : "in a moment";
      return `The credentials of ${who} are not available right now. Press Show again ${wait}.`;
    }
    if (err.status === 400 || err.status === 422) return "Check the values in the form.";
    if (err.status >= 500) return "The API failed; try again, and quote the request id if it keeps failing.";
    return "";
  }

  function showError(err, state, what) {
    const title = document.createElement("strong");
    title.textContent = what;
    const detail = document.createElement("span");
    detail.className = "detail";
    detail.textContent = err instanceof ApiError ? `${err.detail} (HTTP ${err.status}).` : String(err.message || err);
    const todo = document.createElement("span");
    todo.className = "advice";
    todo.textContent = err instanceof ApiError ? advice(err, state) : "";
    els.status.replaceChildren(title, detail, todo);
    els.status.className = "error";
  }

  // ---- the form --------------------------------------------------------------------------------------------------
  function option(value, label) {
    const opt = document.createElement("option");
    opt.value = value;
    opt.textContent = label;
    return opt;
  }

  async function loadProviders() {
    let list;
    try {
      list = await getJSON("/providers");
    } catch (err) {
      if (!(err instanceof ApiError && err.invalidToken)) throw err;
      // A token the API refuses (expired since it was stored, or pasted wrong) would fail every request: drop it,
      // say why, and carry on signed out.
      signOut(`The API refused this token: ${err.detail}. Get a new token and sign in again.`);
      list = await getJSON("/providers");
    }
    providers = list;
    // Rebuilt, not appended to: which restricted providers are listed depends on who is signed in.
    els.provider.replaceChildren(option("", "(owner of the bucket)"),
      ...providers.map((p) => option(p.name, p.title === p.name ? p.name : `${p.title} (${p.name})`)));
  }

  async function loadSamples() {
    samples = await getJSON("/viewer/samples");
    for (const s of samples) {
      const opt = option(s.url, s.title || s.url);
      opt.dataset.provider = s.provider || "";
      opt.dataset.variable = s.variable || "";
      // Without the /md/ routes a variable sample cannot be shown: it is left out.
      if (!s.variable || els.variable) els.sample.appendChild(opt);
    }
    if (!samples.length) els.sample.disabled = true;
  }

  function fillForm(state) {
    els.url.value = state.url;
    if (state.provider && !Array.from(els.provider.options).some((o) => o.value === state.provider)) {
      // With sign-in, a provider missing from the list may be a restricted one this caller may not read.
      els.provider.appendChild(option(state.provider, `${state.provider} (${els.signin ? "not listed" : "not configured"})`));
    }
    els.provider.value = state.provider;
    if (els.variable) els.variable.value = state.variable;
    const sample = Array.from(els.sample.options).find((o) => o.value === state.url
      && o.dataset.provider === state.provider && (o.dataset.variable || "") === state.variable);
    els.sample.value = sample ? sample.value : "";
  }

  function bandChoices(info) {
    const count = info.count || 1;
    const names = (info.band_descriptions || []).map((d) => d[1]);
    const choices = [];
    for (let i = 1; i <= count; i++) {
      const name = names[i - 1] && names[i - 1] !== `b${i}` ? ` (${names[i - 1]})` : "";
      choices.push([String(i), `Band ${i}${name}`]);
    }
    if (count >= 3) choices.push(["1,2,3", "RGB: bands 1, 2, 3"]);
    choices.push(["expr", "Expression…"]);
    return choices;
  }

  function fillRenderControls(state) {
    const choices = bandChoices(source.info);
    els.bands.replaceChildren(...choices.map(([v, l]) => option(v, l)));
    els.bands.value = state.expression ? "expr" : state.bidx.join(",") || "1";
    els.expression.value = state.expression;
    els.expressionRow.hidden = els.bands.value !== "expr";
    const [lo, hi] = state.rescale ? state.rescale.split(",") : ["", ""];
    els.min.value = lo || "";
    els.max.value = hi || "";
    if (state.colormap_name && !Array.from(els.colormap.options).some((o) => o.value === state.colormap_name)) {
      els.colormap.appendChild(option(state.colormap_name, state.colormap_name));
    }
    els.colormap.value = state.colormap_name;
    els.colormap.disabled = isRgb(state);
  }

  function isRgb(state) { return !state.expression && state.bidx.length > 1; }

  function controlsState() {
    const choice = els.bands.value;
    const expression = choice === "expr" ? els.expression.value.trim() : "";
    const lo = els.min.value.trim(), hi = els.max.value.trim();
    const state = {
      url: view.url, provider: view.provider, variable: view.variable,
      // A one-band image needs no `bidx` (the API's default), which keeps its links short.
      bidx: choice === "expr" || (source.info.count || 1) === 1 ? [] : choice.split(","),
      expression,
      rescale: lo !== "" && hi !== "" ? `${lo},${hi}` : "",
      colormap_name: els.colormap.disabled ? lastColormap : els.colormap.value,
    };
    if (isRgb(state)) state.colormap_name = "";
    return state;
  }

  // ---- loading a source and rendering it -------------------------------------------------------------------------
  function sourceQuery(state) {
    const q = new URLSearchParams({ url: state.url });
    if (state.provider) q.set("provider", state.provider);
    if (state.variable) q.set("variable", state.variable);
    return q;
  }

  function selectionQuery(state) {
    const q = sourceQuery(state);
    if (state.expression) q.set("expression", state.expression);
    else state.bidx.forEach((b) => q.append("bidx", b));
    return q;
  }

  function clearSource() {
    source = null;
    if (layer) { map.removeLayer(layer); layer = null; }
    if (outline) { map.removeLayer(outline); outline = null; }
    els.validation.hidden = true;
    els.histograms.hidden = true;
    els.render.disabled = true;
    for (const el of [els.info, els.stats, els.validate]) el.textContent = "";
    for (const el of [els.tileUrl, els.tilejsonUrl]) el.value = "";
  }

  async function applyState(state) {
    const token = ++loadToken;
    fillForm(state);
    els.shareUrl.value = window.location.href;
    if (!state.url) {
      clearSource();
      setStatus("Choose a sample or paste an s3:// URL, then press Show.");
      return;
    }
    if (!sameSource(source, state)) {
      clearSource();
      setStatus(`Reading ${state.url}…`);
      const src = sourceQuery(state);
      const footprint = getJSON(`${routes(state)}/info.geojson?${src}`);
      const [info, stats, validation] = await Promise.allSettled([
        footprint,
        state.variable
          ? footprint.then((f) => statistics(state, `${src}&histogram_bins=40`, f))
          : statistics(state, `${src}&histogram_bins=40`),
        // The COG check is about GeoTIFFs: a variable has none.
        state.variable ? Promise.resolve(null) : getJSON(`/cog/validate?${src}`),
      ]);
      if (token !== loadToken) return;
      if (info.status === "rejected") {
        showError(info.reason, state, `Cannot open ${state.url}${state.provider ? ` as ${state.provider}` : ""}.`);
        return;
      }
      source = {
        url: state.url, provider: state.provider, variable: state.variable, info: info.value.properties,
        footprint: info.value,
      };
      els.info.textContent = JSON.stringify(info.value, null, 2);
      if (validation.value !== null) showValidation(validation);
      source.stats = stats.status === "fulfilled" ? stats.value : null;
      els.stats.textContent = stats.status === "fulfilled" ? JSON.stringify(stats.value, null, 2) : stats.reason.message;
      outline = L.geoJSON(info.value, {
        interactive: false,
        style: { color: "#d7263d", weight: 2, fill: false, dashArray: "6 4", className: "cog-outline" },
      }).addTo(map);
      map.fitBounds(outline.getBounds(), { padding: [24, 24] });
    }
    if (!state.bidx.length && !state.expression) {
      const count = source.info.count || 1;
      if (count >= 3) state.bidx = ["1", "2", "3"];
      else if (count > 1) state.bidx = ["1"];
    }
    if (isRgb(state)) state.colormap_name = "";
    if (!state.rescale) {
      state.rescale = await autoRescale(state);
      if (token !== loadToken) return;
    }
    remember(state, true); // the link now says exactly what is shown
    view = state;
    if (!isRgb(state)) lastColormap = state.colormap_name;
    els.shareUrl.value = window.location.href;
    fillRenderControls(state);
    els.render.disabled = false;
    drawHistograms(state);
    drawColormap(state);
    await showTiles(state, token);
  }

  // titiler.xarray has no GET statistics: a variable's are those of its footprint, POSTed as a GeoJSON feature.
  async function statistics(state, query, footprint) {
    if (!state.variable) return getJSON(`/cog/statistics?${query}`);
    const feature = await getJSON(`/md/statistics?${query}`, footprint);
    return feature.properties.statistics;
  }

  async function autoRescale(state) {
    let stats = source.stats;
    if (state.expression) {
      try {
        stats = await statistics(state, selectionQuery(state), source.footprint);
      } catch (_) {
        return "";
      }
    }
    if (!stats) return "";
    const keys = state.expression ? Object.keys(stats) : state.bidx.length ? state.bidx.map((b) => `b${b}`) : Object.keys(stats);
    const picked = keys.map((k) => stats[k]).filter(Boolean);
    if (!picked.length) return "";
    let lo = Math.min(...picked.map((s) => s.percentile_2 ?? s.min));
    let hi = Math.max(...picked.map((s) => s.percentile_98 ?? s.max));
    if (!(hi > lo)) { lo = Math.min(...picked.map((s) => s.min)); hi = Math.max(...picked.map((s) => s.max)); }
    if (!(hi > lo)) hi = lo + 1;
    return `${roundNice(lo)},${roundNice(hi)}`;
  }

  function roundNice(value) { return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6))); }

  async function showTiles(state, token) {
    const q = selectionQuery(state);
    if (state.rescale) q.set("rescale", state.rescale);
    if (state.colormap_name) q.set("colormap_name", state.colormap_name);
    const tilejsonPath = `${routes(state)}/WebMercatorQuad/tilejson.json?${q}`;
    try {
      const tj = await getJSON(tilejsonPath);
      if (token !== loadToken) return;
      const [w, s, e, n] = tj.bounds;
      if (layer) map.removeLayer(layer);
      // `bounds` keeps Leaflet from asking for tiles outside the image (which the API answers with 404).
      // 512-pixel tiles are shown at their size: tile zoom z covers map zoom z + 1.
      const offset = tilesizeOf(tj.tiles[0]) === 512 ? 1 : 0;
      // Signed in, the API signs the TileJSON's tile URLs (`grant=`, short-lived, for this view only): the token
      // itself never goes into a tile URL. Only an API without grants needs it there.
      const tiles = /[?&]grant=/.test(tj.tiles[0]) ? tj.tiles[0] : withToken(tj.tiles[0]);
      layer = L.tileLayer(tiles, {
        bounds: L.latLngBounds([s, w], [n, e]), tileSize: 256 << offset, zoomOffset: -offset, minZoom: offset,
        maxNativeZoom: tj.maxzoom + offset, maxZoom: Math.max(tj.maxzoom + 4, 18), className: "cog-layer",
      });
      layer.on("tileerror", () => setStatus("Some tiles failed to load; press Show to try again.", "error"));
      layer.addTo(map);
      if (outline) outline.bringToFront();
      els.tileUrl.value = tj.tiles[0];
      if (els.tokenHint) els.tokenHint.hidden = !storedToken();
      els.tilejsonUrl.value = new URL(root + tilejsonPath, window.location.href).href;
      setStatus(`Showing ${state.url}${state.provider ? " as " + state.provider : ""}. Click the image for its values.`);
    } catch (err) {
      if (token !== loadToken) return;
      showError(err, state, "Cannot render this view.");
    }
  }

  function tilesizeOf(tileUrl) {
    const size = Number(new URL(tileUrl, window.location.href).searchParams.get("tilesize"));
    return size === 512 ? 512 : 256;
  }

  // ---- validation panel ------------------------------------------------------------------------------------------
  const EXPLAIN = [
    [/not tiled/i, "It is striped, not tiled: to show one map tile a reader must fetch whole strips of the image. " +
      "Write it with internal tiles (e.g. 512×512)."],
    [/internal overviews/i, "It has no overviews: a zoomed-out view must read the full-resolution image. Add " +
      "internal overviews."],
    [/offset|ghost|header/i, "Its internal layout is not in COG order, so readers need extra requests."],
  ];

  function explain(message) {
    const hit = EXPLAIN.find(([re]) => re.test(message));
    return hit ? hit[1] : "";
  }

  function showValidation(result) {
    els.validation.hidden = false;
    els.messages.replaceChildren();
    els.facts.replaceChildren();
    els.advice.hidden = true;
    if (result.status === "rejected") {
      els.verdict.className = "verdict unknown";
      els.verdict.textContent = `Could not validate: ${result.reason.message}`;
      els.validate.textContent = result.reason.message;
      return;
    }
    const v = result.value;
    els.validate.textContent = JSON.stringify(v, null, 2);
    const errors = v.COG_errors || [], warnings = v.COG_warnings || [];
    const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    if (v.COG && !warnings.length) {
      els.verdict.className = "verdict valid";
      els.verdict.textContent = "✓ Valid cloud-optimized GeoTIFF";
    } else if (v.COG) {
      els.verdict.className = "verdict warnings";
      els.verdict.textContent = `⚠ Valid cloud-optimized GeoTIFF, with ${plural(warnings.length, "warning")}`;
    } else {
      els.verdict.className = "verdict invalid";
      els.verdict.textContent = `✗ Not a valid cloud-optimized GeoTIFF: ${plural(errors.length, "error")}` +
        (warnings.length ? `, ${plural(warnings.length, "warning")}` : "");
      els.advice.hidden = false;
    }
    for (const [kind, list] of [["error", errors], ["warning", warnings]]) {
      for (const message of list) {
        const li = document.createElement("li");
        li.className = kind;
        const head = document.createElement("strong");
        head.textContent = kind === "error" ? "Error: " : "Warning: ";
        const why = explain(message);
        li.append(head, `${message}.`, ...(why ? [document.createElement("br"), why] : []));
        els.messages.appendChild(li);
      }
    }
    const p = v.Profile || {}, geo = v.GEO || {}, ifd = v.IFD || [];
    const full = ifd[0] || {};
    const overviews = ifd.slice(1);
    const block = full.Blocksize ? `${full.Blocksize[1]} × ${full.Blocksize[0]} px` : "?";
    const res = geo.Resolution ? geo.Resolution.map((r) => Math.abs(r).toPrecision(4)).join(" × ") : "?";
    const rows = [
      ["Size", `${p.Width} × ${p.Height} px`],
      ["Bands", `${p.Bands} × ${p.Dtype}${p.ColorInterp ? ` (${p.ColorInterp.join(", ")})` : ""}`],
      ["Nodata", p.Nodata !== null && p.Nodata !== undefined ? String(p.Nodata)
        : p.InternalMask ? "internal mask" : p.AlphaBand ? "alpha band" : "none"],
      ["CRS", `${geo.CRS || "none"}, pixel ${res}`],
      ["Overviews", overviews.length
        ? `${overviews.length}: ${overviews.map((o) => `1/${o.Decimation} (${o.Width} × ${o.Height})`).join(", ")}`
        : "none"],
      ["Internal tiling", p.Tiled ? `tiled, blocks of ${block}` : `not tiled (strips of ${block})`],
      ["Compression", v.Compression || "none"],
      ["Interleave", p.Interleave || "?"],
    ];
    for (const [name, value] of rows) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = name;
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(th, td);
      els.facts.appendChild(tr);
    }
  }

  // ---- pictures: histograms and the colormap strip ---------------------------------------------------------------
  function drawHistograms(state) {
    const stats = source.stats;
    els.histogramList.replaceChildren();
    if (!stats) { els.histograms.hidden = true; return; }
    els.histograms.hidden = false;
    const [lo, hi] = state.rescale.split(",").map(Number);
    // The bands the map shows are drawn in full; the others are dimmed. No `bidx` means every band is shown.
    const shown = new Set(state.expression ? [] : state.bidx.length ? state.bidx.map((b) => `b${b}`) : Object.keys(stats));
    for (const [band, s] of Object.entries(stats)) {
      const figure = document.createElement("figure");
      figure.className = shown.has(band) ? "histogram shown" : "histogram";
      const caption = document.createElement("figcaption");
      caption.textContent = `${band}: min ${roundNice(s.min)}, max ${roundNice(s.max)}, mean ${roundNice(s.mean)}, ` +
        `valid ${roundNice(s.valid_percent)} %`;
      const canvas = document.createElement("canvas");
      canvas.width = 300;
      canvas.height = 80;
      canvas.className = "histogram-canvas";
      canvas.setAttribute("aria-label", `histogram of ${band}`);
      figure.append(caption, canvas);
      els.histogramList.appendChild(figure);
      paintHistogram(canvas, s.histogram, shown.has(band) ? [lo, hi] : null);
    }
  }

  function paintHistogram(canvas, histogram, range) {
    const ctx = canvas.getContext("2d");
    const [counts, edges] = histogram;
    const W = canvas.width, H = canvas.height - 12;
    const first = edges[0], last = edges[edges.length - 1], span = last - first || 1;
    const x = (value) => ((value - first) / span) * W;
    const top = Math.max(...counts, 1);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, W, canvas.height);
    if (range && Number.isFinite(range[0]) && Number.isFinite(range[1])) {
      ctx.fillStyle = "rgba(59, 111, 208, 0.12)";
      ctx.fillRect(x(range[0]), 0, x(range[1]) - x(range[0]), H);
    }
    ctx.fillStyle = "#3b6fd0";
    counts.forEach((count, i) => {
      const x0 = x(edges[i]), x1 = x(edges[i + 1]);
      const h = count ? Math.max(1, (count / top) * (H - 2)) : 0;
      ctx.fillRect(x0, H - h, Math.max(1, x1 - x0 - 1), h);
    });
    ctx.fillStyle = "#5a6474";
    ctx.font = "10px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    ctx.textAlign = "left";
    ctx.fillText(roundNice(first), 1, canvas.height);
    ctx.textAlign = "right";
    ctx.fillText(roundNice(last), W - 1, canvas.height);
  }

  async function drawColormap(state) {
    const canvas = els.strip, ctx = canvas.getContext("2d");
    const [lo, hi] = state.rescale ? state.rescale.split(",") : ["", ""];
    els.stripMin.textContent = lo;
    els.stripMax.textContent = hi;
    let colors;
    if (isRgb(state)) {
      colors = null;
    } else if (state.colormap_name) {
      if (!colormaps.has(state.colormap_name)) {
        try {
          colormaps.set(state.colormap_name, await getJSON(`/colorMaps/${encodeURIComponent(state.colormap_name)}`));
        } catch (_) {
          colormaps.set(state.colormap_name, null);
        }
      }
      const cmap = colormaps.get(state.colormap_name);
      colors = cmap ? Array.from({ length: 256 }, (_, i) => cmap[String(i)] || [0, 0, 0, 0]) : null;
    } else {
      colors = Array.from({ length: 256 }, (_, i) => [i, i, i, 255]);
    }
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    canvas.hidden = !colors;
    if (!colors) {
      els.stripMin.textContent = isRgb(state) ? `bands ${state.bidx.join(", ")} as red, green, blue` : "";
      els.stripMax.textContent = "";
      return;
    }
    const w = canvas.width / colors.length;
    colors.forEach(([r, g, b, a], i) => {
      ctx.fillStyle = `rgba(${r},${g},${b},${a / 255})`;
      ctx.fillRect(Math.floor(i * w), 0, Math.ceil(w) + 1, canvas.height);
    });
  }

  // ---- the value under the cursor --------------------------------------------------------------------------------
  map.on("click", async (e) => {
    if (!source || !view || !outline) return;
    const popup = L.popup({ className: "value-popup" }).setLatLng(e.latlng);
    const lng = ((e.latlng.lng + 540) % 360) - 180;
    if (!outline.getBounds().contains(L.latLng(e.latlng.lat, lng))) {
      popup.setContent(`${formatLatLng(e.latlng)}<br>outside the image`).openOn(map);
      return;
    }
    popup.setContent(`${formatLatLng(e.latlng)}<br>reading…`).openOn(map);
    try {
      const point = await getJSON(`${routes(view)}/point/${lng.toFixed(6)},${e.latlng.lat.toFixed(6)}?${selectionQuery(view)}`);
      const nodata = source.info.nodata_value;
      const lines = point.values.map((value, i) => {
        const name = (point.band_names || [])[i] || `b${i + 1}`;
        const masked = value === null || (nodata !== null && nodata !== undefined && value === nodata);
        return `<b>${escapeHtml(name)}</b>: ${value === null ? "no value" : escapeHtml(String(value))}${masked ? " (nodata)" : ""}`;
      });
      popup.setContent(`${formatLatLng(e.latlng)}<br>${lines.join("<br>")}`);
    } catch (err) {
      popup.setContent(`${formatLatLng(e.latlng)}<br>${escapeHtml(err.message)}`);
    }
  });

  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  // ---- sign-in -----------------------------------------------------------------------------------------------------
  // The token's claims are read only to greet the user: the API verifies the signature, the page cannot and need not.
  function signedInName() {
    const t = storedToken();
    if (!t) return "";
    try {
      const part = t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")));
      const name = claims["cognito:username"] || claims.username || claims.preferred_username || claims.email;
      return typeof name === "string" ? name : "";
    } catch (_) {
      return "";
    }
  }

  function showSignIn(message) {
    if (!els.signin) return;
    const signedIn = Boolean(storedToken());
    els.signinForm.hidden = signedIn;
    els.signedIn.hidden = !signedIn;
    els.signedInAs.textContent = signedIn ? `Signed in${signedInName() ? ` as ${signedInName()}` : ""}.` : "";
    els.signinStatus.textContent = message || "";
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(message);
  }

  function startState() {
    const state = readState();
    if (!state.url && samples.length) {
      const first = samples[0];
      return { ...state, url: first.url, provider: first.provider || "", variable: first.variable || "", colormap_name: DEFAULT_COLORMAP };
    }
    return state;
  }

  // After sign-in or sign-out the providers this caller may see, and what the view can show, have changed.
  async function refresh() {
    try {
      await loadProviders();
    } catch (err) {
      setStatus(err.message, "error");
      return;
    }
    source = null;
    applyState(startState());
  }

  if (els.signin) {
    els.signinForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = els.token.value.trim().replace(/^Bearer\s+/i, "");
      els.token.value = ""; // the field is not where the token is kept
      if (!value) { showSignIn("Paste a token first."); return; }
      sessionStorage.setItem(TOKEN_KEY, value);
      showSignIn();
      refresh();
    });
    els.signout.addEventListener("click", () => {
      signOut();
      refresh();
    });
    showSignIn();
  }

  // ---- wiring ----------------------------------------------------------------------------------------------------
  function go(state) {
    remember(state, false);
    applyState(state);
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

  const keepColormap = () => lastColormap;

  els.sample.addEventListener("change", () => {
    const opt = els.sample.selectedOptions[0];
    if (!opt || !opt.value) return;
    go({ url: opt.value, provider: opt.dataset.provider || "", variable: opt.dataset.variable || "", bidx: [], expression: "", rescale: "", colormap_name: keepColormap() });
  });
  els.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const url = els.url.value.trim();
    if (!url) { setStatus("Enter an s3:// URL or choose a sample.", "error"); return; }
    const variable = els.variable ? els.variable.value.trim() : "";
    const state = { url, provider: els.provider.value, variable, bidx: [], expression: "", rescale: "", colormap_name: keepColormap() };
    source = null; // Show always reads the source again (e.g. after a 503 or a fixed upload)
    go(state);
  });
  els.bands.addEventListener("change", () => {
    els.expressionRow.hidden = els.bands.value !== "expr";
    if (els.bands.value === "expr") { els.expression.focus(); return; }
    els.min.value = els.max.value = ""; // a new selection gets its own stretch
    go(controlsState());
  });
  els.expression.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); els.min.value = els.max.value = ""; go(controlsState()); }
  });
  els.apply.addEventListener("click", () => go(controlsState()));
  els.colormap.addEventListener("change", () => { if (view) go(controlsState()); });
  window.addEventListener("popstate", () => applyState(readState()));
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", () => copyField(button));
  }

  Promise.all([loadProviders(), loadSamples()])
    .then(() => applyState(startState()))
    .catch((err) => setStatus(err.message, "error"));
})();
