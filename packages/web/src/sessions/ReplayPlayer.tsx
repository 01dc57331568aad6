import 'asciinema-player/dist/bundle/asciinema-player.css';
import { Box } from '@mantine/core';
import { create } from 'asciinema-player';
import { useEffect, useRef } from 'react';

/**
 * asciinema-player on a recording's asciicast v2 text (fetched by the caller through the API client, with the
 * session cookie: the player itself never fetches anything). It starts playing at once; its own controls pause,
 * seek and go full screen.
 */
export function ReplayPlayer({ cast, label }: { cast: string; label: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const player = create({ data: cast }, element, {
      autoPlay: true,
      fit: 'width',
      // A shell left idle for minutes replays as two seconds of nothing.
      idleTimeLimit: 2,
      terminalFontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
    });
    return () => player.dispose();
  }, [cast]);
  return <Box ref={box} aria-label={label} role="region" data-testid="replay-player" />;
}
