/**
 * The part of noVNC's `RFB` (@novnc/novnc 1.7, which ships no types) the VNC viewer uses, as its docs/API.md
 * describes it.
 */
declare module '@novnc/novnc' {
  export interface RfbCredentials {
    username?: string;
    password?: string;
    target?: string;
  }

  export interface RfbEvents {
    connect: CustomEvent<Record<string, never>>;
    disconnect: CustomEvent<{ clean: boolean }>;
    credentialsrequired: CustomEvent<{ types: (keyof RfbCredentials)[] }>;
    securityfailure: CustomEvent<{ status: number; reason?: string }>;
    clipboard: CustomEvent<{ text: string }>;
    desktopname: CustomEvent<{ name: string }>;
  }

  export default class RFB {
    /**
     * Connects to the VNC server behind `urlOrChannel` (a WebSocket URL, or a WebSocket already made) and shows
     * its screen in `target`.
     */
    constructor(
      target: HTMLElement,
      urlOrChannel: string | WebSocket,
      options?: { shared?: boolean; credentials?: RfbCredentials; wsProtocols?: string[] },
    );
    scaleViewport: boolean;
    clipViewport: boolean;
    viewOnly: boolean;
    background: string;
    focusOnClick: boolean;
    disconnect(): void;
    sendCredentials(credentials: RfbCredentials): void;
    clipboardPasteFrom(text: string): void;
    focus(): void;
    addEventListener<K extends keyof RfbEvents>(type: K, listener: (event: RfbEvents[K]) => void): void;
    removeEventListener<K extends keyof RfbEvents>(type: K, listener: (event: RfbEvents[K]) => void): void;
  }
}
