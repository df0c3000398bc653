// Markdown as the chat shows it: GitHub tables and lists, links, code with
// syntax highlighting, and — loaded only when a message has some — math
// between `$$` signs (single dollars stay dollars: agents talk about money).

import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import python from 'highlight.js/lib/languages/python';
import sql from 'highlight.js/lib/languages/sql';
import yaml from 'highlight.js/lib/languages/yaml';
import { lazy, Suspense, type ComponentProps } from 'react';
import ReactMarkdown, { type Components } from 'react-markdown';
import remarkGfm from 'remark-gfm';

hljs.registerLanguage('python', python);
hljs.registerLanguage('bash', bash);
hljs.registerLanguage('json', json);
hljs.registerLanguage('sql', sql);
hljs.registerLanguage('javascript', javascript);
hljs.registerLanguage('yaml', yaml);

const MathMarkdown = lazy(() => import('./MathMarkdown'));

/** Highlighted HTML for `code` (escaped by the highlighter), or `null` for a language it does not know. */
export function highlighted(code: string, language: string): string | null {
  const known = hljs.getLanguage(language);
  return known ? hljs.highlight(code, { language, ignoreIllegals: true }).value : null;
}

/** A block of code, highlighted when its language is known. */
export function CodeBlock({ code, language = 'python' }: { code: string; language?: string }) {
  const html = highlighted(code, language);
  return (
    <pre className="overflow-x-auto rounded bg-gray-100 p-2 text-sm dark:bg-gray-800">
      {html === null ? <code>{code}</code> : <code className="hljs" data-language={language} dangerouslySetInnerHTML={{ __html: html }} />}
    </pre>
  );
}

export const markdownComponents: Components = {
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
  return <ReactMarkdown remarkPlugins={[remarkGfm]} components={markdownComponents} {...props} />;
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
