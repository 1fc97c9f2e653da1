  // embed:resize {height}, as bridge.js (in the app) and page.js (in the
  // gateway's pages) both send it: bridge.go puts this file into each, so
  // the rule is written once. heightReporter returns a function that posts
  // the document's height through post when it has changed. A height of 0
  // is a document not laid out yet (a frame measured before its first
  // layout), never a size to give the iframe: it is not sent.
  const heightReporter = (post) => {
    let last = -1;
    return () => {
      const el = document.documentElement;
      const h = Math.ceil(Math.max(el.getBoundingClientRect().height, document.body ? document.body.scrollHeight : 0));
      if (h !== last && h > 0) {
        last = h;
        post({ type: "embed:resize", height: h });
      }
    };
  };
