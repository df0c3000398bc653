import { render } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { SafeHtml, sanitizeHtml, sanitizeSvg } from './SafeHtml';

const PNG = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

/** What in `root` could run, fetch, navigate or clobber: empty when it is inert. */
function hazards(root: ParentNode): string[] {
  const found: string[] = [];
  const banned = 'script, style, iframe, frame, object, embed, form, input, button, textarea, select, link, meta, base, svg, math, foreignObject, template, noscript';
  for (const el of root.querySelectorAll(banned)) found.push(`<${el.nodeName.toLowerCase()}>`);
  for (const el of root.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      if (name.startsWith('on') || ['style', 'id', 'name', 'srcdoc', 'formaction', 'action', 'data', 'http-equiv'].includes(name)) {
        found.push(`${el.nodeName.toLowerCase()}[${name}]`);
      }
    }
    const href = el.getAttribute('href');
    if (href !== null && !/^(?:https?:|mailto:)/i.test(href)) found.push(`href=${href}`);
    const src = el.getAttribute('src');
    if (src !== null && !/^data:image\/(?:png|jpeg|gif|webp);base64,/i.test(src)) found.push(`src=${src}`);
  }
  return found;
}

function parse(html: string): HTMLElement {
  // jsdom runs no script, so parsing the output here shows what a browser would build.
  const div = document.createElement('div');
  div.innerHTML = html;
  return div;
}

describe('sanitizeHtml', () => {
  const hostile: Array<[string, string]> = [
    ['an event handler on an image', '<img src=x onerror="alert(1)">'],
    ['a script', '<p>hi</p><script>alert(1)</script>'],
    ['a script in SVG', '<svg><script>alert(1)</script></svg>'],
    ['SVG onload', '<svg onload="alert(1)"><circle r="1"/></svg>'],
    ['a foreignObject', '<svg><foreignObject><img src=x onerror="alert(1)"></foreignObject></svg>'],
    ['a javascript: link', '<a href="javascript:alert(1)">click</a>'],
    ['a javascript: link with an entity', '<a href="java&#x09;script:alert(1)">click</a>'],
    ['a data: link', '<a href="data:text/html,<script>alert(1)</script>">click</a>'],
    ['a vbscript: link', '<a href="vbscript:msgbox(1)">click</a>'],
    ['a relative link', '<a href="/api/v1/me">click</a>'],
    ['a form with formaction', '<form action="https://evil/"><input name="q"><button formaction="javascript:alert(1)">go</button></form>'],
    ['a textarea and a select', '<textarea>x</textarea><select><option>a</option></select>'],
    ['an iframe with srcdoc', '<iframe srcdoc="<script>alert(1)</script>"></iframe>'],
    ['a style sheet', '<style>@import url(//evil/x.css)</style><p>x</p>'],
    ['a style attribute', '<div style="background:url(//evil/x.png)">x</div>'],
    ['MathML mXSS', '<math><mtext><table><mglyph><style><img src=x onerror="alert(1)">'],
    ['namespace confusion', '<svg></p><style><a id="</style><img src=1 onerror=alert(1)>">'],
    ['noscript mXSS', '<noscript><p title="</noscript><img src=x onerror=alert(1)>">'],
    ['a base', '<base href="https://evil/">'],
    ['a meta refresh', '<meta http-equiv="refresh" content="0;url=https://evil/">'],
    ['a link element', '<link rel="stylesheet" href="https://evil/x.css">'],
    ['an object', '<object data="https://evil/x.swf"></object>'],
    ['an embed', '<embed src="https://evil/x.swf">'],
    ['a remote image', '<img src="https://evil/pixel.png">'],
    ['an SVG data image', '<img src="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=">'],
    ['DOM clobbering', '<img name="getElementById"><form id="location"></form><a id="defaultView" name="x">x</a>'],
    ['a template', '<template><img src=x onerror=alert(1)></template>'],
  ];

  it.each(hostile)('makes %s inert', (_, html) => {
    const clean = sanitizeHtml(html);
    expect(hazards(parse(clean))).toEqual([]);
    // Sanitising again changes nothing: the output does not mutate into
    // something else when the browser parses it.
    expect(sanitizeHtml(clean)).toBe(clean);
  });

  it('drops the dangerous parts and keeps the text around them', () => {
    expect(sanitizeHtml('<p>hi</p><script>alert(1)</script>')).toBe('<p>hi</p>');
    expect(sanitizeHtml('<a href="javascript:alert(1)">click</a>')).toBe('<a>click</a>');
    expect(sanitizeHtml('<div style="color:red" id="x" class="note">x</div>')).toBe('<div class="note">x</div>');
  });

  it('keeps a pandas DataFrame: its table, cells, spans and classes, not its style sheet', () => {
    const dataframe = `<div>
<style scoped>
    .dataframe tbody tr th:only-of-type { vertical-align: middle; }
    .dataframe thead th { text-align: right; }
</style>
<table border="1" class="dataframe">
  <caption>Sales</caption>
  <colgroup><col span="2"></colgroup>
  <thead>
    <tr style="text-align: right;"><th></th><th colspan="2" halign="left">sales</th></tr>
  </thead>
  <tbody>
    <tr><th rowspan="2" valign="top">Q1</th><td align="right">100</td><td>&lt;b&gt;</td></tr>
    <tr><td>120</td><td><code>x</code> <b>y</b> <em>z</em></td></tr>
  </tbody>
  <tfoot><tr><td>total</td></tr></tfoot>
</table>
</div>`;
    const root = parse(sanitizeHtml(dataframe));
    expect(hazards(root)).toEqual([]);
    const table = root.querySelector('table.dataframe');
    expect(table?.getAttribute('border')).toBe('1');
    expect(root.querySelector('caption')?.textContent).toBe('Sales');
    expect(root.querySelector('col')?.getAttribute('span')).toBe('2');
    expect(root.querySelector('th[colspan="2"]')?.textContent).toBe('sales');
    expect(root.querySelector('th[rowspan="2"]')?.getAttribute('valign')).toBe('top');
    expect(root.querySelector('td[align="right"]')?.textContent).toBe('100');
    expect(root.querySelectorAll('tbody td')).toHaveLength(4);
    expect(root.querySelector('tfoot td')?.textContent).toBe('total');
    expect([...root.querySelectorAll('tbody td')].map((td) => td.textContent)).toContain('<b>');
    expect(root.querySelector('td code')?.textContent).toBe('x');
    expect(root.textContent).not.toContain('vertical-align');
  });

  it('keeps text formatting', () => {
    const html =
      '<h1>T</h1><h6>t</h6><p>a<br>b</p><hr><blockquote>q</blockquote><pre>p</pre><ul><li>u</li></ul><ol><li>o</li></ol>' +
      '<dl><dt>d</dt><dd>e</dd></dl><span><i>i</i><strong>s</strong><u>u</u><s>s</s><small>s</small><sub>1</sub><sup>2</sup></span>';
    expect(sanitizeHtml(html)).toBe(html);
  });

  it('keeps raster images from data: URIs, and drops any other source', () => {
    const root = parse(sanitizeHtml(`<img src="${PNG}" alt="chart"><img src="https://evil/x.png" alt="remote"><img src="//evil/x.png">`));
    const images = root.querySelectorAll('img');
    expect(images[0]?.getAttribute('src')).toBe(PNG);
    expect(images[0]?.getAttribute('alt')).toBe('chart');
    expect(images[1]?.hasAttribute('src')).toBe(false);
    expect(images[2]?.hasAttribute('src')).toBe(false);
  });

  it('keeps http(s) and mailto links, opening in a new tab without an opener or referrer', () => {
    const root = parse(sanitizeHtml('<a href="https://example.com/x?a=1" target="_self" rel="opener">docs</a><a href="mailto:a@example.com">mail</a>'));
    const links = root.querySelectorAll('a');
    expect(links[0]?.getAttribute('href')).toBe('https://example.com/x?a=1');
    for (const link of links) {
      expect(link.getAttribute('target')).toBe('_blank');
      expect(link.getAttribute('rel')).toBe('noopener noreferrer');
    }
    expect(links[1]?.getAttribute('href')).toBe('mailto:a@example.com');
  });
});

describe('SafeHtml', () => {
  it('renders sanitised HTML, contained in its box', () => {
    const { container } = render(<SafeHtml html={'<table class="dataframe"><tr><td>1</td></tr></table><img src=x onerror="alert(1)">'} className="text-sm" />);
    const box = container.firstElementChild;
    expect(box?.className).toContain('contain-paint');
    expect(box?.querySelector('td')?.textContent).toBe('1');
    expect(box?.querySelector('img')?.hasAttribute('onerror')).toBe(false);
    expect(hazards(container)).toEqual([]);
  });
});

describe('sanitizeSvg', () => {
  it('keeps a matplotlib-style figure, with its internal references, as well-formed SVG', () => {
    const figure = `<?xml version="1.0" encoding="utf-8" standalone="no"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">
<svg xmlns:xlink="http://www.w3.org/1999/xlink" width="460pt" height="345pt" viewBox="0 0 460 345" xmlns="http://www.w3.org/2000/svg" version="1.1">
 <defs><style type="text/css">*{stroke-linejoin: round}</style><path id="m1" d="M 0 0 L 0 3.5" style="stroke: #000"/>
 <linearGradient id="g"><stop offset="0"/></linearGradient></defs>
 <g id="figure_1"><use xlink:href="#m1" x="57" y="307"/><image xlink:href="${PNG}" width="1" height="1"/><text x="1" y="2">Q1 &amp; Q2</text></g>
</svg>`;
    const clean = sanitizeSvg(figure);
    expect(clean).not.toBeNull();
    const doc = new DOMParser().parseFromString(clean ?? '', 'image/svg+xml');
    expect(doc.querySelector('parsererror')).toBeNull();
    expect(doc.documentElement.getAttribute('viewBox')).toBe('0 0 460 345');
    expect(doc.querySelector('linearGradient')).not.toBeNull();
    expect(doc.querySelector('use')?.getAttributeNS('http://www.w3.org/1999/xlink', 'href')).toBe('#m1');
    expect(doc.querySelector('image')?.getAttributeNS('http://www.w3.org/1999/xlink', 'href')).toBe(PNG);
    expect(doc.querySelector('text')?.textContent).toBe('Q1 & Q2');
  });

  it('removes script, handlers, foreignObject, links, animation and outside references', () => {
    const clean = sanitizeSvg(`<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" onload="alert(1)">
<script>alert(1)</script><foreignObject><iframe src="javascript:alert(1)"></iframe></foreignObject>
<a xlink:href="javascript:alert(1)"><text>click</text></a><a href="https://evil/">x</a>
<animate attributeName="href" to="javascript:alert(1)"/><set attributeName="onmouseover" to="alert(1)"/>
<use href="https://evil/sprite.svg#a"/><use xlink:href="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=#a"/><image href="https://evil/x.png"/>
<circle r="1" onclick="alert(1)"/></svg>`);
    expect(clean).not.toBeNull();
    const doc = new DOMParser().parseFromString(clean ?? '', 'image/svg+xml');
    expect(doc.querySelectorAll('script, foreignObject, iframe, a, animate, set')).toHaveLength(0);
    for (const el of doc.querySelectorAll('*')) {
      for (const attr of el.attributes) {
        expect(attr.name.toLowerCase().startsWith('on')).toBe(false);
        if (attr.localName === 'href') expect(attr.value.startsWith('#')).toBe(true);
      }
    }
    expect(doc.querySelector('circle')).not.toBeNull();
    expect(doc.querySelector('text')?.textContent).toBe('click');
  });

  it('finds nothing to draw in a file without an svg element', () => {
    expect(sanitizeSvg('<p>not a picture</p><script>alert(1)</script>')).toBeNull();
  });
});
