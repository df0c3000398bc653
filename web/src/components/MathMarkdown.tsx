// Markdown with math, typeset by KaTeX: a chunk of its own, loaded the first
// time a message has math in it.

import 'katex/dist/katex.min.css';
import ReactMarkdown from 'react-markdown';
import rehypeKatex from 'rehype-katex';
import remarkGfm from 'remark-gfm';
import remarkMath from 'remark-math';
import { markdownComponents } from './Markdown';

export default function MathMarkdown({ text }: { text: string }) {
  return (
    <ReactMarkdown
      remarkPlugins={[remarkGfm, [remarkMath, { singleDollarTextMath: false }]]}
      rehypePlugins={[rehypeKatex]}
      components={markdownComponents}
    >
      {text}
    </ReactMarkdown>
  );
}
