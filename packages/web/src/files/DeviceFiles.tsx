import {
  Alert,
  Button,
  Code,
  FileInput,
  Group,
  Progress,
  Stack,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { type FormEvent, useRef, useState } from 'react';
import { api, type Device, data } from '../api/client.ts';
import { downloadUrl, type Upload, type UploadedFile, uploadFile } from '../api/files.ts';
import { bytes } from '../ui/format.ts';
import { ErrorNotice } from '../ui/QueryState.tsx';

/** Where the server checks a device path: absolute, no NUL, not ending with `/` (a file, not a directory). */
function pathProblem(path: string): string | undefined {
  if (path === '') return undefined;
  if (!path.startsWith('/')) return 'an absolute path, starting with /';
  if (path.endsWith('/')) return 'a file name after the last /';
  if (path.includes('\0')) return 'no NUL characters';
  return undefined;
}

/**
 * The device page's Files tab: upload a file from this computer to a path on the device (with progress, and the
 * size and SHA-256 the device wrote), and download a file from the device (the browser shows its progress). Only
 * for people who may open a shell there: the server authorizes both as scp (operators and above).
 */
export function DeviceFiles({ device }: { device: Device }) {
  const limit = useQuery({
    queryKey: ['file-transfer'],
    queryFn: async () => data(await api.GET('/api/v1/file-transfer')),
    staleTime: Number.POSITIVE_INFINITY,
  });
  const maxBytes = limit.data?.maxBytes;
  return (
    <Stack gap="lg" maw={720}>
      <Text size="sm" c="dimmed">
        Files move through the device's agent, checked by SHA-256 end to end: an upload takes the place of the
        file only once the device wrote all of it, unchanged. Transfers are audited and listed under Sessions.
        {maxBytes !== undefined && ` This server takes files of up to ${bytes(maxBytes)}.`}
      </Text>
      <UploadForm device={device} maxBytes={maxBytes} />
      <DownloadForm device={device} />
    </Stack>
  );
}

type UploadState =
  | { kind: 'idle' }
  | { kind: 'sending'; sent: number; total: number }
  | { kind: 'done'; file: UploadedFile }
  | { kind: 'failed'; error: unknown };

function UploadForm({ device, maxBytes }: { device: Device; maxBytes: number | undefined }) {
  const [file, setFile] = useState<File | null>(null);
  const [destination, setDestination] = useState('/tmp/');
  const [state, setState] = useState<UploadState>({ kind: 'idle' });
  const running = useRef<Upload | undefined>(undefined);
  /** A destination ending with / is a directory: the file keeps its name there. */
  const target = file && destination.endsWith('/') ? `${destination}${file.name}` : destination;
  const problem = pathProblem(target);
  // Refused here rather than by the server mid-upload, where a browser may only see the connection close.
  const tooLarge =
    file && maxBytes !== undefined && file.size > maxBytes
      ? `${file.name} is ${file.size} bytes (${bytes(file.size)}), more than this server's limit of ${maxBytes} ` +
        `bytes (${bytes(maxBytes)}) per file ` +
        '(FLEETGATE_FILE_TRANSFER_MAX_BYTES): split it, or ask an administrator to raise the limit'
      : undefined;

  const choose = (chosen: File | null) => {
    setFile(chosen);
    setState({ kind: 'idle' });
  };
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!file || problem || tooLarge) return;
    setState({ kind: 'sending', sent: 0, total: file.size });
    const upload = uploadFile(device.uuid, target, file, (sent, total) =>
      setState({ kind: 'sending', sent, total }),
    );
    running.current = upload;
    try {
      setState({ kind: 'done', file: await upload.done });
    } catch (error) {
      setState({ kind: 'failed', error });
    } finally {
      running.current = undefined;
    }
  };
  const sending = state.kind === 'sending';
  const percent = sending && state.total > 0 ? Math.floor((state.sent / state.total) * 100) : 0;

  return (
    <form onSubmit={submit} aria-label="Upload a file">
      <Stack gap="xs">
        <Title order={4}>Upload to the device</Title>
        <FileInput
          label="File"
          placeholder="Choose a file"
          value={file}
          onChange={choose}
          disabled={sending}
          aria-invalid={!!tooLarge}
        />
        <FieldProblem>{tooLarge}</FieldProblem>
        <TextInput
          label="Destination path on the device"
          description="Ending with / keeps the file's name in that directory"
          value={destination}
          onChange={(event) => setDestination(event.currentTarget.value)}
          aria-invalid={!!problem}
          disabled={sending}
          required
        />
        <FieldProblem>{problem && `The destination needs ${problem}.`}</FieldProblem>
        {file && !problem && (
          <Text size="sm">
            {file.name} ({bytes(file.size)}) → <Code>{target}</Code>
          </Text>
        )}
        <Group>
          <Button type="submit" disabled={!file || !!problem || !!tooLarge || sending}>
            Upload
          </Button>
          {sending && (
            <Button variant="default" onClick={() => running.current?.cancel()}>
              Cancel
            </Button>
          )}
        </Group>
        {sending && (
          <Stack gap={4}>
            <Progress value={percent} aria-label="Upload progress" />
            <Text size="sm" aria-live="polite">
              {state.sent < state.total
                ? `${percent}% — ${bytes(state.sent)} of ${bytes(state.total)}`
                : 'Sent; the device is checking and writing it…'}
            </Text>
          </Stack>
        )}
        {state.kind === 'done' && (
          <Alert color="gray" title="Uploaded" role="status">
            <Text size="sm">
              <Code>{state.file.path}</Code> on {device.name}: {bytes(state.file.size)} ({state.file.size}{' '}
              bytes)
            </Text>
            <Text size="sm">
              SHA-256 <Code data-testid="uploaded-sha256">{state.file.sha256}</Code>
            </Text>
          </Alert>
        )}
        {state.kind === 'failed' && <ErrorNotice error={state.error} title="Upload failed" />}
      </Stack>
    </form>
  );
}

function DownloadForm({ device }: { device: Device }) {
  const [source, setSource] = useState('');
  const problem = pathProblem(source);
  const ready = source !== '' && !problem;
  const prevent = (event: FormEvent) => event.preventDefault();
  return (
    <form onSubmit={prevent} aria-label="Download a file">
      <Stack gap="xs">
        <Title order={4}>Download from the device</Title>
        <TextInput
          label="Path of the file on the device"
          placeholder="/var/log/syslog"
          value={source}
          onChange={(event) => setSource(event.currentTarget.value)}
          aria-invalid={!!problem}
        />
        <FieldProblem>{problem && `The path needs ${problem}.`}</FieldProblem>
        <Group>
          {/* The browser's own download (its progress, its save dialog); a refusal opens the server's JSON reason. */}
          {ready ? (
            <Button
              component="a"
              href={downloadUrl(device.uuid, source)}
              download={source.slice(source.lastIndexOf('/') + 1)}
            >
              Download
            </Button>
          ) : (
            <Button disabled>Download</Button>
          )}
        </Group>
        <Text size="xs" c="dimmed">
          The download stops short, and the browser reports it failed, if the bytes differ from the file's
          SHA-256 (sent in the X-Content-SHA256 header).
        </Text>
      </Stack>
    </form>
  );
}

/** What is wrong with a field, under it (dark red: Mantine's error red falls under 4.5:1 contrast on white). */
function FieldProblem({ children }: { children: string | false | undefined }) {
  if (!children) return null;
  return (
    <Text size="sm" c="red.9" role="alert">
      {children}
    </Text>
  );
}
