/* Search excerpts for a book opened from disk (see glmmteach/search_excerpts.py).
   Sphinx's search page fetches each result's page to cut an excerpt from it; browsers refuse fetch on
   file:// URLs, so there the requests for the book's pages are answered from _static/search_texts.js,
   the text of every page written when the book was built. Every other request goes to the real fetch. */
(() => {
  if (window.location.protocol !== "file:") return;
  const realFetch = window.fetch.bind(window);
  const root = new URL(document.documentElement.dataset.content_root || "./", window.location.href);
  let texts = null;

  // the page texts, loaded once, on the first request for a page (only the search page makes one)
  const loadTexts = () => {
    texts ??= new Promise((resolve) => {
      const script = document.createElement("script");
      script.src = new URL("_static/search_texts.js", root).href;
      script.onload = () => resolve(window.SEARCH_PAGE_TEXTS || {});
      script.onerror = () => resolve({});
      document.head.appendChild(script);
    });
    return texts;
  };

  // The excerpts are plain text that MathJax never sees (and a cut may fall inside a formula): the TeX of
  // the page's math is shown as text a reader can follow, "\(\hat\tau\)" as "τ̂", a displayed equation as
  // "[equation]", instead of its source.
  const SYMBOLS = {
    alpha: "α", beta: "β", gamma: "γ", delta: "δ", epsilon: "ε", varepsilon: "ε", eta: "η", theta: "θ",
    kappa: "κ", lambda: "λ", mu: "μ", nu: "ν", pi: "π", rho: "ρ", sigma: "σ", tau: "τ", phi: "φ",
    varphi: "φ", chi: "χ", psi: "ψ", omega: "ω", Gamma: "Γ", Delta: "Δ", Theta: "Θ", Lambda: "Λ",
    Sigma: "Σ", Phi: "Φ", Omega: "Ω", sum: "Σ", prod: "Π", int: "∫", infty: "∞", pm: "±", times: "×",
    cdot: "·", le: "≤", leq: "≤", ge: "≥", geq: "≥", ne: "≠", neq: "≠", approx: "≈", sim: "~", mid: "|",
    to: "→", top: "ᵀ", ldots: "…", dots: "…", quad: " ", qquad: " ", ell: "ℓ", partial: "∂", nabla: "∇",
  };
  const ACCENTS = {hat: "\u0302", tilde: "\u0303", bar: "\u0304"};
  // commands that style or size what follows and say nothing themselves
  const DROPPED = new Set(["mathbf", "mathrm", "mathit", "mathcal", "mathbb", "boldsymbol", "text", "textrm",
                           "operatorname", "left", "right", "big", "Big", "bigl", "bigr", "Bigl", "Bigr",
                           "displaystyle", "limits"]);
  const readableTex = (tex) => tex
    .replace(/\\(hat|tilde|bar)\s*\{?\\?([A-Za-z]+)\}?/g,
             (_, accent, name) => (SYMBOLS[name] ?? name) + ACCENTS[accent])
    .replace(/\\([A-Za-z]+)/g, (_, name) => SYMBOLS[name] ?? (DROPPED.has(name) ? "" : name))
    .replace(/\\[,;:! ]/g, " ")
    .replace(/\\(.)/g, "$1")
    .replace(/[{}]/g, "")
    .replace(/\s+/g, " ")
    .trim();
  const readableMath = (text) => text
    .replace(/\\\[[\s\S]*?(\\\]|$)/g, " [equation] ")
    .replace(/\\begin\{(\w+\*?)\}[\s\S]*?(\\end\{\1\}|$)/g, " [equation] ")
    .replace(/\\\(([\s\S]*?)(\\\)|$)/g, (_, tex) => readableTex(tex))
    .replace(/ {2,}/g, " ");

  // the page's text as the main content of a minimal HTML page, the form Sphinx's htmlToText reads
  const asPage = (text) => {
    const main = document.createElement("div");
    main.setAttribute("role", "main");
    main.textContent = readableMath(text);
    return new Response(`<!doctype html><html><body>${main.outerHTML}</body></html>`,
                        {headers: {"Content-Type": "text/html"}});
  };

  window.fetch = (resource, options) => {
    const url = new URL(resource instanceof Request ? resource.url : String(resource), window.location.href);
    const path = decodeURIComponent(url.pathname);
    const rootPath = decodeURIComponent(root.pathname);
    if (url.protocol !== "file:" || !path.startsWith(rootPath) || !path.endsWith(".html")) {
      return realFetch(resource, options);
    }
    const docname = path.slice(rootPath.length, -".html".length);
    return loadTexts().then((pages) =>
      docname in pages ? asPage(pages[docname]) : realFetch(resource, options));
  };
})();
