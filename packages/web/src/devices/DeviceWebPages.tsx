import { Button, Checkbox, Table, Text } from '@mantine/core';
import { useMutation, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api, type Device, data } from '../api/client.ts';
import { ErrorNotice, QueryState } from '../ui/QueryState.tsx';

/**
 * Device web pages: the web server on one of the device's allowed ports, opened in a new tab through fleetgate,
 * on an origin of its own (`<port>-<uuid>.<suffix>`). The tab is opened in the click itself (so no popup
 * blocker stops it), then sent to the single-use link the server answers; it gets no handle back to this page.
 */
export function DeviceWebPages({ device }: { device: Device }) {
  const ports = useQuery({
    queryKey: ['allowed-ports', { kind: 'device', device: device.uuid }],
    queryFn: async () =>
      data(
        await api.GET('/api/v1/devices/{device}/allowed-ports', {
          params: { path: { device: device.uuid } },
        }),
      ),
  });
  const [https, setHttps] = useState(false);
  const open = useMutation({
    mutationFn: async ({ port, https, tab }: { port: number; https: boolean; tab: Window | null }) => {
      try {
        const link = data(
          await api.POST('/api/v1/devices/{device}/web-sessions', {
            params: { path: { device: device.uuid } },
            body: { port, https },
          }),
        );
        if (tab) tab.location.href = link.url;
        else window.open(link.url, '_blank', 'noopener');
        return link;
      } catch (error) {
        tab?.close();
        throw error;
      }
    },
  });
  /** Opens the tab now, in the click: a tab opened after an await would be a popup to block. */
  const openPort = (port: number) => {
    const tab = window.open('about:blank', '_blank');
    // The device's page must not reach back into fleetgate's window (window.opener).
    if (tab) tab.opener = null;
    open.mutate({ port, https, tab });
  };
  return (
    <QueryState query={ports}>
      {(allowed) => (
        <>
          <Text size="sm" c="dimmed" mb="xs">
            Opens the device's own web page for a port in a new tab, through fleetgate: nothing to install.
            Each port is its own site, signed in for you alone; each connection to the device is listed in
            Sessions.
          </Text>
          {device.status !== 'online' && (
            <Text size="sm" c="orange" mb="xs">
              The device is offline: its pages open once it is back online.
            </Text>
          )}
          <Checkbox
            label="The device serves HTTPS (self-signed certificates are accepted)"
            checked={https}
            onChange={(event) => setHttps(event.currentTarget.checked)}
            mb="xs"
          />
          {allowed.ports.length === 0 ? (
            <Text size="sm">
              No port of this device may be reached: an administrator adds ports in the Ports tab.
            </Text>
          ) : (
            <Table withTableBorder maw={420} aria-label="Web pages of allowed ports">
              <Table.Tbody>
                {allowed.ports.map((port) => (
                  <Table.Tr key={port}>
                    <Table.Td>
                      <Text ff="monospace">{port}</Text>
                    </Table.Td>
                    <Table.Td>
                      <Button
                        size="xs"
                        variant="light"
                        aria-label={`Open the web page of port ${port}`}
                        loading={open.isPending && open.variables?.port === port}
                        onClick={() => openPort(port)}
                      >
                        Open in a new tab
                      </Button>
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          )}
          {open.isError && <ErrorNotice error={open.error} />}
        </>
      )}
    </QueryState>
  );
}
