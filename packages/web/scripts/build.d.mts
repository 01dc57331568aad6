/** The built UI's folder (served by `fleetgate serve`). */
export declare const distDir: string;
export declare function webBuildIsStale(): boolean;
export declare function buildWeb(log?: (line: string) => void): Promise<void>;
/** Builds the UI when it is missing or older than a source; answers the folder to serve. */
export declare function ensureWebBuilt(log?: (line: string) => void): Promise<string>;
