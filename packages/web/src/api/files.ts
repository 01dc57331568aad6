import { ApiError } from './client.ts';

/**
 * File transfer (`GET`/`PUT /api/v1/devices/{device}/files`, the server's features/file-transfer). Not through
 * openapi-fetch: a download is the browser's own (a link, with its own progress and save dialog), and an upload
 * needs progress, which only XMLHttpRequest reports (`fetch` has none for request bodies). Both are signed in by
 * the session cookie, same origin, like every other call (the server checks the upload's Origin: CSRF).
 */

/** What the server answers an upload: the device wrote `size` bytes with this SHA-256, equal to what was sent. */
export interface UploadedFile {
  path: string;
  size: number;
  sha256: string;
  session: string;
}

/** The URL that downloads `path` from the device (an attachment, with `Content-Length` and its SHA-256). */
export function downloadUrl(device: string, path: string): string {
  return `/api/v1/devices/${encodeURIComponent(device)}/files?path=${encodeURIComponent(path)}`;
}

/** A running upload: its result, and how to give it up. */
export interface Upload {
  done: Promise<UploadedFile>;
  cancel(): void;
}

/**
 * Uploads `file` to `path` on the device; `onProgress` gets the bytes sent so far and the total. Rejects with an
 * `ApiError` carrying the server's reason (413 over the limit, 403 not allowed, 404 no such directory…).
 */
export function uploadFile(
  device: string,
  path: string,
  file: Blob,
  onProgress: (sent: number, total: number) => void,
): Upload {
  const request = new XMLHttpRequest();
  const done = new Promise<UploadedFile>((resolve, reject) => {
    request.open('PUT', downloadUrl(device, path));
    request.withCredentials = true;
    // The file's own type would do too (the server takes any); this one says what it is: bytes.
    request.setRequestHeader('Content-Type', 'application/octet-stream');
    request.upload.onprogress = (event) =>
      onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    request.onload = () => {
      let body: { error?: { code: string; message: string; details?: unknown } } & Partial<UploadedFile>;
      try {
        body = JSON.parse(request.responseText);
      } catch {
        reject(new ApiError(request.status, 'error', `${request.status} ${request.statusText}`));
        return;
      }
      if (request.status === 200) resolve(body as UploadedFile);
      else
        reject(
          new ApiError(
            request.status,
            body.error?.code ?? 'error',
            body.error?.message ?? `${request.status} ${request.statusText}`,
            body.error?.details,
          ),
        );
    };
    request.onerror = () =>
      reject(
        new ApiError(0, 'network', 'the upload was cut (network error): nothing was written; try again'),
      );
    request.onabort = () => reject(new ApiError(0, 'cancelled', 'upload cancelled: nothing was written'));
    request.send(file);
  });
  return { done, cancel: () => request.abort() };
}
