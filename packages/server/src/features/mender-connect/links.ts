import { type OpenTarget, StreamError, StreamErrorCode } from '@fleetgate/protocol';
import type { DeviceLinks } from '../remote-access/index.ts';
import type { MenderConnectHub } from './connections.ts';
import { FileTransferStream } from './file-transfer.ts';
import { PortForwardStream } from './port-forward.ts';
import { ShellStream } from './shell.ts';

/**
 * mender-connect devices' connections as links of the stream router: what the router asks for, mapped onto
 * mender-connect's protocols — a port (`fleetgate tunnel`, `ssh -J`, the CONNECT proxy, device web pages) onto port
 * forwarding (proto 3), a shell or a command (the SSH gateway's direct mode, the web terminal) onto its shell
 * (proto 1), a file read or write onto its file transfer (proto 2). What mender-connect cannot do (sftp, the agent's
 * diagnostics) is refused with a reason the person reads.
 */
export function menderConnectLinks(hub: MenderConnectHub): DeviceLinks {
  return {
    linkOf(device) {
      const connection = hub.connectionOf(device.id);
      // Only a connection this very device opened: its token names the same uuid as the row.
      if (!connection || connection.principal.uuid !== device.uuid) return undefined;
      return {
        open(target: OpenTarget, opener) {
          if ('port' in target)
            return PortForwardStream.open(connection, target.host ?? '127.0.0.1', target.port);
          if ('exec' in target)
            return ShellStream.open(connection, opener?.userId ?? 'fleetgate', target.exec);
          if ('file' in target) return FileTransferStream.open(connection, target.file);
          const what = `the ${target.service} service`;
          return Promise.reject(
            new StreamError(
              StreamErrorCode.refused,
              `${what} is not available on this device: it is reached through mender-connect, which offers a shell, port forwarding and file transfer`,
            ),
          );
        },
      };
    },
  };
}
