// HTML that nobody here wrote — a pandas table, display(HTML(...)) or an
// object's _repr_html_ from sandboxed code, an SVG from the library — made
// inert before it reaches the DOM. Outside this file the only HTML handed to
// dangerouslySetInnerHTML is highlight.js's, which escapes what it is given;
// everything else renders as React text.

import DOMPurify, { type Config } from 'dompurify';
import { useMemo } from 'react';

/** Images travel inside the HTML: a remote one would let the code that made
 * the output learn who looked at it, and when. */
const RASTER_DATA_URI = /^data:image\/(?:png|jpeg|gif|webp);base64,[a-z0-9+/=\s]*$/i;
const LINK_URI = /^(?:https?:|mailto:)/i;

// An explicit allowlist, not a list of what to forbid: whatever a browser
// adds next stays out until someone lets it in. No style (CSS can fetch with
// url() and paint over the page), no id or name (they clobber `document.x`),
// no forms, frames, SVG or MathML (SVG carries script, MathML is where mXSS
// lives).
const HTML_CONFIG = {
  ALLOWED_TAGS: [
    'table', 'thead', 'tbody', 'tfoot', 'tr', 'th', 'td', 'caption', 'colgroup', 'col',
    'p', 'div', 'span', 'br', 'hr', 'b', 'i', 'em', 'strong', 'u', 's', 'small', 'sub', 'sup', 'code', 'pre', 'blockquote',
    'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'ul', 'ol', 'li', 'dl', 'dt', 'dd', 'a', 'img',
  ],
  ALLOWED_ATTR: ['class', 'colspan', 'rowspan', 'span', 'align', 'valign', 'scope', 'border', 'title', 'href', 'src', 'alt', 'width', 'height'],
  // DOMPurify holds every attribute not known to be URI-safe to the URI
  // pattern; these are plain numbers and words.
  ADD_URI_SAFE_ATTR: ['colspan', 'rowspan', 'span', 'align', 'valign', 'scope', 'border', 'width', 'height'],
  ALLOWED_URI_REGEXP: LINK_URI,
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  RETURN_TRUSTED_TYPE: false,
} satisfies Config;

// An instance of its own, so its hooks touch no other caller of DOMPurify.
const htmlPurifier = DOMPurify(globalThis.window);
htmlPurifier.addHook('uponSanitizeAttribute', (node, data) => {
  // DOMPurify lets any data: URI through on an <img>; only raster images may
  // stay, and a remote image may not (see RASTER_DATA_URI).
  if (data.attrName === 'src') data.keepAttr = node.nodeName === 'IMG' && RASTER_DATA_URI.test(data.attrValue);
  if (data.attrName === 'href') data.keepAttr = node.nodeName === 'A' && LINK_URI.test(data.attrValue);
});
htmlPurifier.addHook('afterSanitizeAttributes', (node) => {
  // A link leaves the app, and the page it opens gets no handle on ours.
  if (node.nodeName === 'A' && node.hasAttribute('href')) {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

/** `html` with everything that could run, fetch, navigate or clobber removed. */
export function sanitizeHtml(html: string): string {
  return htmlPurifier.sanitize(html, HTML_CONFIG);
}

/** Untrusted HTML, sanitised. `contain-paint` keeps it inside its box: a
 * class such as `fixed inset-0` cannot lay a fake page over the app. */
export function SafeHtml({ html, className = '' }: { html: string; className?: string }) {
  const clean = useMemo(() => sanitizeHtml(html), [html]);
  return <div className={`contain-paint ${className}`} dangerouslySetInnerHTML={{ __html: clean }} />;
}

// SVG from the library, shown only as an <img> (which runs no script and
// loads nothing). It is sanitised anyway because a member can open the image
// on its own, where an SVG is a live document.
const SVG_CONFIG = {
  USE_PROFILES: { svg: true, svgFilters: true },
  // matplotlib draws its glyphs and markers with <use>; the hook below keeps
  // every reference inside the file.
  ADD_TAGS: ['use'],
  // The profile leaves these out already; named so that a change of
  // DOMPurify's defaults cannot let them in.
  FORBID_TAGS: ['a', 'script', 'foreignObject', 'animate', 'set', 'iframe', 'object', 'embed'],
  RETURN_TRUSTED_TYPE: false,
  RETURN_DOM_FRAGMENT: true,
} satisfies Config;

const svgPurifier = DOMPurify(globalThis.window);
svgPurifier.addHook('uponSanitizeAttribute', (node, data) => {
  // References stay inside the file, except an <image> of raster data
  // (matplotlib embeds imshow() that way).
  if (data.attrName === 'href' || data.attrName === 'xlink:href') {
    data.keepAttr = data.attrValue.startsWith('#') || (node.nodeName === 'image' && RASTER_DATA_URI.test(data.attrValue));
  }
});

/** The SVG document in `source`, sanitised and serialised as XML, or `null`
 * if there is no SVG in it. */
export function sanitizeSvg(source: string): string | null {
  const fragment = svgPurifier.sanitize(source, SVG_CONFIG);
  const svg = fragment.querySelector('svg');
  // The HTML parser read it; XMLSerializer writes it back as the XML an
  // image/svg+xml document must be (namespaces declared, elements closed).
  return svg ? new XMLSerializer().serializeToString(svg) : null;
}
