import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { hasMath, Markdown } from './Markdown';

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
});
