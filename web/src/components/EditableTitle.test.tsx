import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { EditableTitle } from './EditableTitle';

describe('EditableTitle', () => {
  it('shows a hostile thread or project title as text', () => {
    const title = '<img src=x onerror="alert(1)"><script>alert(1)</script>';
    render(<EditableTitle id="heading" title={title} label="Thread title" canEdit onSave={() => Promise.resolve()} />);
    const heading = screen.getByRole('heading', { name: title });
    expect(heading.textContent).toBe(title);
    expect(heading.children).toHaveLength(0);
  });
});
