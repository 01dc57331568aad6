/**
 * Close codes every browser stream to a device shares (the server's features/remote-access/stream-end.ts), as
 * headings: the web terminal and the VNC viewer add their own.
 */
export const streamEndTitles: Record<number, string> = {
  1001: 'The server is stopping',
  1011: 'The server failed',
  4000: 'Ended by an administrator',
  4001: 'Access revoked',
  4002: 'The device went offline',
};
