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

  // the page's text as the main content of a minimal HTML page, the form Sphinx's htmlToText reads
  const asPage = (text) => {
    const main = document.createElement("div");
    main.setAttribute("role", "main");
    main.textContent = text;
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
