// The server's rendered Markdown (already sanitised there) turned into DOM nodes without ever assigning
// innerHTML to the page: the HTML is parsed in an inert document (no script runs, nothing loads), then only
// allowlisted elements are rebuilt with createElement, attributes checked one by one, text copied as text.

const TAGS = new Set(["p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "s", "del", "code", "pre",
                      "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td"]);
const SCHEMES = new Set(["http", "https", "mailto"]);
const ALIGN = new Set(["left", "right", "center"]);

// Relative links and http(s)/mailto only; browsers drop spaces and control characters in a scheme.
export function safeLink(href) {
  const found = /^([a-z][a-z0-9+.-]*):/i.exec(href.replace(/[\u0000-\u0020\u007f]/g, ""));
  return !found || SCHEMES.has(found[1].toLowerCase());
}

function copyInto(target, source) {
  for (const node of source.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) {
      target.append(node.data);
    } else if (node.nodeType === Node.ELEMENT_NODE) {
      const tag = node.localName;
      if (!TAGS.has(tag)) {  // not ours: keep only its text
        target.append(node.textContent);
        continue;
      }
      const copy = document.createElement(tag);
      const href = node.getAttribute("href");
      if (tag === "a") {
        if (href && safeLink(href)) copy.setAttribute("href", href);
        copy.setAttribute("rel", "noopener noreferrer nofollow");
      }
      const start = node.getAttribute("start");
      if (tag === "ol" && start && /^\d{1,9}$/.test(start)) copy.setAttribute("start", start);
      if ((tag === "th" || tag === "td") && ALIGN.has(node.style.textAlign)) copy.style.textAlign = node.style.textAlign;
      copyInto(copy, node);
      target.append(copy);
    }
  }
}

export function safeFragment(html) {
  const inert = new DOMParser().parseFromString(html, "text/html");
  const fragment = document.createDocumentFragment();
  copyInto(fragment, inert.body);
  return fragment;
}
