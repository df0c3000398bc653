// Replaying a finished run: a scrubber over its events (drag, arrow keys,
// or play), the run and the computer panel shown as they were at that point.

import * as Slider from '@radix-ui/react-slider';
import { useEffect, useState } from 'react';
import { Button, cx, focusRing } from '../components/ui';

/** Milliseconds between two events while playing. */
const PLAY_EVERY_MS = 250;

export function ReplayBar({ at, total, onSeek, onClose }: { at: number; total: number; onSeek: (at: number) => void; onClose: () => void }) {
  const [wanted, setPlaying] = useState(false);
  // Playing stops by itself at the end.
  const playing = wanted && at < total;
  useEffect(() => {
    if (!playing) return undefined;
    const timer = setTimeout(() => onSeek(at + 1), PLAY_EVERY_MS);
    return () => clearTimeout(timer);
  }, [playing, at, onSeek]);
  return (
    <div role="group" aria-label="Replay" className="flex items-center gap-3 rounded-md border border-indigo-300 bg-indigo-50 px-3 py-2 dark:border-indigo-700 dark:bg-indigo-950">
      <Button
        size="sm"
        variant="primary"
        onClick={() => {
          if (!playing && at >= total) onSeek(0);
          setPlaying(!playing);
        }}
      >
        {playing ? 'Pause' : 'Play'}
      </Button>
      <Slider.Root
        className="relative flex h-5 flex-1 touch-none items-center select-none"
        min={0}
        max={total}
        step={1}
        value={[at]}
        onValueChange={([value]) => {
          setPlaying(false);
          onSeek(value ?? 0);
        }}
      >
        <Slider.Track className="relative h-1 flex-1 rounded-full bg-indigo-200 dark:bg-indigo-800">
          <Slider.Range className="absolute h-full rounded-full bg-indigo-600 dark:bg-indigo-400" />
        </Slider.Track>
        <Slider.Thumb aria-label="Replay position" className={cx('block h-4 w-4 rounded-full border-2 border-indigo-600 bg-white dark:border-indigo-300', focusRing)} />
      </Slider.Root>
      <span className="w-28 text-right text-xs tabular-nums" aria-live="polite">
        Event {at} of {total}
      </span>
      <Button size="sm" variant="ghost" onClick={onClose}>
        End replay
      </Button>
    </div>
  );
}
