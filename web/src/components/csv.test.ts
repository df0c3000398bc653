import { describe, expect, it } from 'vitest';
import { guessDelimiter, parseCsv } from './csv';

describe('parseCsv', () => {
  it('reads quoted fields with commas, doubled quotes and line breaks', () => {
    const text = 'name,note\r\n"Smith, Ada","said ""hi"""\r\nBo,"two\nlines"\n';
    expect(parseCsv(text)).toEqual([
      ['name', 'note'],
      ['Smith, Ada', 'said "hi"'],
      ['Bo', 'two\nlines'],
    ]);
  });

  it('keeps empty fields and a last line without a line break', () => {
    expect(parseCsv('a,,c\n1,2,')).toEqual([
      ['a', '', 'c'],
      ['1', '2', ''],
    ]);
  });

  it('stops after the rows asked for', () => {
    const text = Array.from({ length: 1000 }, (_, i) => `${String(i)},x`).join('\n');
    expect(parseCsv(text, 10)).toHaveLength(10);
  });

  it('finds semicolons and tabs as delimiters', () => {
    expect(guessDelimiter('a;b;c\n1;2;3')).toBe(';');
    expect(parseCsv('a\tb\n1\t2')).toEqual([
      ['a', 'b'],
      ['1', '2'],
    ]);
  });
});
