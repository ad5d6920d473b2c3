"""The search page served at ``/`` by :mod:`ecmm.serving`: one HTML file, no remote assets.

Its style and script are kept apart so that the server's Content-Security-Policy can allow
exactly these two inline blocks (by their sha256) and nothing else.
"""

from __future__ import annotations

__all__ = ["PAGE_STYLE", "PAGE_SCRIPT", "PAGE_HTML"]

PAGE_STYLE = """
 body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}
 form{display:flex;gap:.5rem} input{flex:1;font-size:1.1rem;padding:.4rem}
 #results{display:grid;grid-template-columns:repeat(auto-fill,minmax(8rem,1fr));gap:1rem;margin-top:1rem}
 figure{margin:0;text-align:center;font-size:.8rem} img{width:96px;height:96px;image-rendering:pixelated}
 #status{color:#555;margin-top:.5rem} footer{color:#777;font-size:.8rem;margin-top:2rem}
"""

PAGE_SCRIPT = """
const form = document.getElementById("search-form"), input = document.getElementById("query");
const results = document.getElementById("results"), statusLine = document.getElementById("status");
async function runSearch(query) {
  results.innerHTML = "";
  if (!query.trim()) { statusLine.textContent = "Type what you are looking for."; return; }
  statusLine.textContent = "Searching...";
  const response = await fetch("/search?k=12&q=" + encodeURIComponent(query));
  const body = await response.json();
  if (!response.ok) { statusLine.textContent = "Error: " + body.detail; return; }
  statusLine.textContent = body.length + " results for \\u201c" + query + "\\u201d";
  for (const item of body) {
    const figure = document.createElement("figure"), image = document.createElement("img");
    image.className = "result-image"; image.alt = item.title;
    image.onload = () => image.setAttribute("data-loaded", "1");
    image.src = "/photo/" + encodeURIComponent(item.sku_id);
    const caption = document.createElement("figcaption");
    caption.textContent = item.title + " (" + Number(item.score).toFixed(2) + ")";
    figure.append(image, caption); results.append(figure);
  }
}
form.addEventListener("submit", (event) => { event.preventDefault(); runSearch(input.value); });
const initial = new URLSearchParams(location.search).get("q");
if (initial) { input.value = initial; form.requestSubmit(); }
"""

PAGE_HTML = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ecmm shop search</title>
<style>{PAGE_STYLE}</style></head>
<body>
<h1>ecmm shop</h1>
<form id="search-form"><input id="query" name="q" placeholder="e.g. red backpack" maxlength="200" autofocus>
<button type="submit">Search</button></form>
<div id="status"></div><div id="results"></div>
<footer>JSON API: <code>/search?q=</code>, <code>/recommend?user=</code>, <code>POST /support</code>,
<code>/health</code>; its schema is at <a href="/openapi.json">/openapi.json</a>. The interactive docs
(<code>/docs</code>) are off: they would load their scripts from a CDN, and this page loads nothing remote.
Photos: PNG, JPEG or WebP.</footer>
<script>{PAGE_SCRIPT}</script></body></html>
"""
