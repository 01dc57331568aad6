import type { Session } from '../api/client.ts';
import { ButtonLink } from '../ui/links.tsx';

/** Surfaces whose sessions are shells, the only ones recorded. */
const recordedSurfaces: readonly string[] = ['ssh', 'terminal', 'mender-cli'];

/** Whether a session may have a recording (a shell; whether one was kept is known only on asking for it). */
export function mayHaveRecording(session: Session): boolean {
  return recordedSurfaces.includes(session.surface);
}

/** Opens a shell session's replay page (its recording, facts and audit trail). */
export function ReplayLink({ session }: { session: Session }) {
  return (
    <ButtonLink
      size="xs"
      variant="subtle"
      to="/sessions/$sessionId"
      params={{ sessionId: session.id }}
      aria-label={`Replay ${session.user.label}'s session to ${session.device.name}`}
    >
      Replay
    </ButtonLink>
  );
}
