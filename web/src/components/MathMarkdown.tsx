// Markdown with math, typeset by KaTeX: a chunk of its own, loaded the first
// time a message has math in it.

import 'katex/dist/katex.min.css';
import ReactMarkdown from 'react-markdown';
import rehypeKatex from 'rehype-katex';
import remarkGfm from 'remark-gfm';
import remarkMath from 'remark-math';
import { markdownComponents, safeUrl } from './Markdown';

/** KaTeX as untrusted input needs it: `trust: false` turns \href, \url,
 * \includegraphics and \htmlClass/Id/Style/Data into red source text, not
 * links or attributes. `strict` only concerns LaTeX compatibility ('ignore':
 * no console noise); the limits stop a message from expanding a macro or a
 * box without end. */
const KATEX_OPTIONS = { trust: false, strict: 'ignore', maxExpand: 1000, maxSize: 20 } as const;

export default function MathMarkdown({ text }: { text: string }) {
  return (
    <ReactMarkdown
      remarkPlugins={[remarkGfm, [remarkMath, { singleDollarTextMath: false }]]}
      rehypePlugins={[[rehypeKatex, KATEX_OPTIONS]]}
      urlTransform={safeUrl}
      components={markdownComponents}
    >
      {text}
    </ReactMarkdown>
  );
}
