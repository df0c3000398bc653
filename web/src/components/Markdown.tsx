// Markdown as the chat shows it: GitHub tables and lists, links, code with
// syntax highlighting, and — loaded only when a message has some — math
// between `$$` signs (single dollars stay dollars: agents talk about money).
//
// The text comes from models and members, so it must stay inert: no raw HTML
// (there is no rehype-raw; react-markdown turns HTML into text), links only to
// http(s) and mailto, and no image fetched (see `img` below).

import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import python from 'highlight.js/lib/languages/python';
import sql from 'highlight.js/lib/languages/sql';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';
import { lazy, Suspense, type ComponentProps } from 'react';
import ReactMarkdown, { type Components, type UrlTransform } from 'react-markdown';
import remarkGfm from 'remark-gfm';

hljs.registerLanguage('python', python);
hljs.registerLanguage('bash', bash);
hljs.registerLanguage('json', json);
hljs.registerLanguage('sql', sql);
hljs.registerLanguage('javascript', javascript);
hljs.registerLanguage('yaml', yaml);
// HTML and SVG files are shown as their source.
hljs.registerLanguage('xml', xml);

const MathMarkdown = lazy(() => import('./MathMarkdown'));

/** Highlighted HTML for `code`, or `null` for a language it does not know.
 * `hljs.highlight` escapes the code and adds only its own <span class>, which
 * is why its output may go to innerHTML (Markdown.test.tsx holds it to that). */
export function highlighted(code: string, language: string): string | null {
  const known = hljs.getLanguage(language);
  return known ? hljs.highlight(code, { language, ignoreIllegals: true }).value : null;
}

/** A block of code, highlighted when its language is known. */
export function CodeBlock({ code, language = 'python' }: { code: string; language?: string }) {
  const html = highlighted(code, language);
  return (
    // Focusable: a long line scrolls sideways, by keyboard too.
    <pre tabIndex={0} className="overflow-x-auto rounded bg-gray-100 p-2 text-sm dark:bg-gray-800">
      {html === null ? <code>{code}</code> : <code className="hljs" data-language={language} dangerouslySetInnerHTML={{ __html: html }} />}
    </pre>
  );
}

/** Keeps only absolute http(s) and mailto URLs: no javascript:, data:,
 * vbscript:, nor relative links (the app's own routes live in the hash). */
export const safeUrl: UrlTransform = (url) => (/^(?:https?:\/\/|mailto:)/i.test(url.trim()) ? url.trim() : undefined);

const LINK_PROPS = { target: '_blank', rel: 'noopener noreferrer' } as const;

export const markdownComponents: Components = {
  a({ href, children, node, ...rest }) {
    void node;
    // A link whose URL was dropped keeps its text and nothing to click.
    if (!href) return <span>{children}</span>;
    return (
      <a {...rest} href={href} {...LINK_PROPS}>
        {children}
      </a>
    );
  },
  // An image is not fetched: the URL is the model's (or a member's) choice,
  // so loading it would tell that host who read the message and when —
  // and a prompt-injected model can put thread data in the URL. The CSP's
  // `img-src 'self' data: blob:` would block it anyway. It becomes a link
  // the reader may choose to follow.
  img({ src, alt }) {
    const label = `[image${alt ? `: ${alt}` : ''}]`;
    if (typeof src !== 'string' || !src) return <span>{label}</span>;
    return (
      <a href={src} {...LINK_PROPS}>
        {label}
      </a>
    );
  },
  code({ className, children, node, ...rest }) {
    void node; // not passed on to the DOM
    const language = /language-([\w-]+)/.exec(className ?? '')?.[1];
    const html = language && typeof children === 'string' ? highlighted(children.replace(/\n$/, ''), language) : null;
    if (html === null) return <code className={className} {...rest}>{children}</code>;
    return <code className="hljs" data-language={language} dangerouslySetInnerHTML={{ __html: html }} {...rest} />;
  },
};

/** Whether the text has math to typeset (`$$…$$`). */
export function hasMath(text: string): boolean {
  return /\$\$[^$]+\$\$/.test(text);
}

function Plain(props: Omit<ComponentProps<typeof ReactMarkdown>, 'remarkPlugins' | 'components'>) {
  return <ReactMarkdown remarkPlugins={[remarkGfm]} components={markdownComponents} urlTransform={safeUrl} {...props} />;
}

export function Markdown({ text }: { text: string }) {
  return (
    <div className="prose max-w-none dark:prose-invert">
      {hasMath(text) ? (
        <Suspense fallback={<Plain>{text}</Plain>}>
          <MathMarkdown text={text} />
        </Suspense>
      ) : (
        <Plain>{text}</Plain>
      )}
    </div>
  );
}
