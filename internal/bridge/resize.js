  // embed:resize {height}, as bridge.js (in the app) and page.js (in the
  // gateway's pages) both send it: bridge.go puts this file into each, so
  // the rule is written once. heightReporter returns a function that posts
  // the document's height through post when it has changed.
  const heightReporter = (post) => {
    let last = -1;
    return () => {
      const el = document.documentElement;
      const h = Math.ceil(Math.max(el.getBoundingClientRect().height, document.body ? document.body.scrollHeight : 0));
      if (h !== last) {
        last = h;
        post({ type: "embed:resize", height: h });
      }
    };
  };
