import { CliError } from './errors.ts';
import { fetchTrusting, tlsAdvice } from './tls.ts';

/** A value of a query string; undefined leaves the parameter out. */
export type QueryValue = string | number | boolean | undefined;

export interface RequestOptions {
  query?: Record<string, QueryValue>;
  /** Sent as JSON. */
  body?: unknown;
}

export interface ApiClientOptions {
  /** Base URL of the server, e.g. `http://127.0.0.1:8080` (the client adds `/api/v1`). */
  server: string;
  /** Session token or API key, sent as `Authorization: Bearer`. */
  token?: string;
  /** How long to wait for an answer, in milliseconds. Default 30 000. */
  timeoutMs?: number;
  /** The HTTP client; default Node's global `fetch`. */
  fetch?: typeof fetch;
  /**
   * PEM of CA certificates the server's certificate may be issued by, besides the system's (the profile's saved
   * CA). Without `fetch`, HTTPS requests then go through `fetchTrusting`.
   */
  ca?: string | undefined;
}

/**
 * A non-2xx answer of the API. `message` is the server's own `error.message`; `code` and `details` are
 * kept for callers that want them (`details` lists every validation problem).
 */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  readonly method: string;
  /** The API path asked for, e.g. `/devices/42`. */
  readonly path: string;
  /** How long the server asks to wait before trying again (its `Retry-After` header), in seconds. */
  readonly retryAfterSeconds: number | undefined;

  constructor(init: {
    status: number;
    code: string;
    message: string;
    details?: unknown;
    method: string;
    path: string;
    retryAfterSeconds?: number;
  }) {
    super(init.message);
    this.name = 'ApiError';
    this.status = init.status;
    this.code = init.code;
    this.details = init.details;
    this.method = init.method;
    this.path = init.path;
    this.retryAfterSeconds = init.retryAfterSeconds;
  }
}

/**
 * Builds an API path with every interpolated value URL-encoded, so a tag key or device reference can never
 * change the path: apiPath`/devices/${device}/tags/${key}`.
 */
export function apiPath(strings: TemplateStringsArray, ...values: (string | number)[]): string {
  return strings.reduce(
    (result, part, index) =>
      result + part + (index < values.length ? encodeURIComponent(String(values[index])) : ''),
    '',
  );
}

/** The fleetgate REST API over HTTP: JSON in, JSON out, one error type. */
export class ApiClient {
  readonly server: string;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(options: ApiClientOptions) {
    this.server = options.server.replace(/\/+$/, '');
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#fetch =
      options.fetch ?? (options.ca && this.server.startsWith('https:') ? fetchTrusting(options.ca) : fetch);
  }

  /**
   * Sends `method path` under `/api/v1` and answers the parsed JSON body, or undefined for 204 No Content.
   * The type parameter states what the caller expects; the body is not checked against it.
   * Throws `ApiError` on a non-2xx answer and `CliError` when the server cannot be reached.
   */
  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(`${this.server}/api/v1${path}`);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined && value !== '') url.searchParams.set(name, String(value));
    }
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    // Only with a body: the server refuses `content-type: application/json` on an empty DELETE or POST.
    if (options.body !== undefined) headers['content-type'] = 'application/json';

    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw this.#unreachable(error);
    }

    const text = await response.text();
    if (!response.ok) throw errorOf(response, text, method, path);
    if (response.status === 204 || text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw new CliError(`${this.server} answered ${method} ${path} with something that is not JSON`, {
        cause: error,
      });
    }
  }

  #unreachable(error: unknown): CliError {
    if (error instanceof DOMException && error.name === 'TimeoutError') {
      return new CliError(`${this.server} did not answer within ${this.#timeoutMs / 1000} s`, {
        cause: error,
      });
    }
    const code = networkErrorCode(error);
    const advice = tlsAdvice(this.server, code);
    if (advice) return new CliError(advice, { cause: error });
    if (code === 'ECONNREFUSED') {
      return new CliError(`cannot reach ${this.server}: is \`fleetgate serve\` running?`, { cause: error });
    }
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
    const reason =
      code === 'ENOTFOUND' || code === 'EAI_AGAIN'
        ? 'unknown host'
        : (code ?? (cause instanceof Error ? cause.message : String(cause)));
    return new CliError(`cannot reach ${this.server}: ${reason}`, { cause: error });
  }
}

function errorOf(response: Response, text: string, method: string, path: string): ApiError {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)
    ?.error;
  const message =
    typeof error?.message === 'string'
      ? error.message
      : `HTTP ${response.status} ${response.statusText}`.trim();
  return new ApiError({
    status: response.status,
    code: typeof error?.code === 'string' ? error.code : `http_${response.status}`,
    message,
    details: error?.details,
    method,
    path,
    retryAfterSeconds: retryAfterOf(response.headers.get('retry-after')),
  });
}

/** `Retry-After` in seconds; its other form, an HTTP date, is not sent by fleetgate and is left out. */
function retryAfterOf(header: string | null): number | undefined {
  return header !== null && /^\d+$/.test(header.trim()) ? Number(header.trim()) : undefined;
}

/** `fetch` wraps socket errors: TypeError('fetch failed') → cause (sometimes an AggregateError) → code. */
export function networkErrorCode(error: unknown): string | undefined {
  return codeOf(error instanceof Error ? error.cause : undefined);
}

function codeOf(cause: unknown): string | undefined {
  if (typeof cause === 'object' && cause !== null && 'code' in cause && typeof cause.code === 'string') {
    return cause.code;
  }
  // Happy eyeballs (`localhost` → ::1 and 127.0.0.1) fails with one error per address.
  if (cause instanceof AggregateError) return codeOf(cause.errors[0]);
  return undefined;
}
