import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { can, requireUser, type UserPrincipal } from '../../infra/access/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import { errorBody, type TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { currentUserPrincipal } from '../auth/index.ts';
import { type DevicePresence, devicePresence } from '../devices/index.ts';

/**
 * Live updates for people (DESIGN section 13): `GET /api/v1/events` is one server-sent event stream per open
 * page, fed by the app's event bus. It carries what changed and, for presence, the few fields a device list
 * shows, never more than the person may read: a device's presence only to people who may read that device, a
 * change only to members of its organization. Pages refetch what they show when told.
 */

/** Writes that may change who the person is or what they may read: their stream is checked again. */
const ACCESS_CHANGES = new Set(['session', 'api_key', 'membership', 'organization', 'user']);
/** Open event streams per person (one per browser tab): more answer 429. */
const STREAMS_PER_PERSON = 16;
/** A comment line this often, in milliseconds, keeps proxies and the browser from timing the stream out. */
const HEARTBEAT_MS = 25_000;

interface Listener {
  principal: UserPrincipal;
  reply: FastifyReply;
}

export function registerLiveEvents(app: TypedApp, deps: ServiceDeps): void {
  const listeners = new Set<Listener>();
  const perPerson = new Map<number, number>();

  const send = (listener: Listener, event: string, data: unknown): void => {
    listener.reply.raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const end = (listener: Listener, reason: string): void => {
    send(listener, 'end', { reason });
    listener.reply.raw.end();
  };

  // Presence comes in batches (about one a second); one read per batch serves every open stream.
  let reading: Promise<void> = Promise.resolve();
  const stopPresence = deps.events.on('presence.written', ({ deviceIds }) => {
    if (listeners.size === 0) return;
    reading = reading
      .then(() => devicePresence(deps.db, deviceIds))
      .then((devices: DevicePresence[]) => {
        for (const listener of listeners) {
          for (const device of devices) {
            if (can(listener.principal, 'device.read', device)) send(listener, 'device', device);
          }
        }
      })
      .catch((err: unknown) => deps.log.error({ err }, 'could not read presence for live updates'));
  });

  const stopChanges = deps.events.on('write.committed', ({ action, resourceType, orgId }) => {
    if (listeners.size === 0) return;
    for (const listener of listeners) {
      const { principal } = listener;
      // Server-wide changes (users, service keys) reach server administrators, who manage them.
      if (orgId === null ? principal.serverAdmin : principal.memberships.some((m) => m.orgId === orgId)) {
        send(listener, 'change', { action, resourceType, orgId });
      }
    }
    if (ACCESS_CHANGES.has(resourceType)) {
      for (const listener of listeners) {
        void currentUserPrincipal(deps.db, listener.principal).then(
          (now) => {
            if (now) listener.principal = now;
            else end(listener, 'signed out: the session ended or access was removed');
          },
          (err: unknown) => deps.log.error({ err }, 'could not check a live stream against access'),
        );
      }
    }
  });

  app.get(
    '/api/v1/events',
    {
      schema: {
        tags: ['live'],
        summary: 'Live updates for my pages, as server-sent events (text/event-stream)',
        description:
          'Events: `device` `{id, uuid, orgId, fleetId, status, onlineVia, vpnAddress, connectedAt, disconnectedAt, lastSeenAt}` when a ' +
          "device's presence changes (written about once a second); `change` `{action, resourceType, orgId}` after " +
          'every change in my organizations (refetch what shows it); `end` `{reason}` when my sign-in ended (the ' +
          'stream then closes). Only what I may read is sent. A comment line every 25 s keeps it open. At most ' +
          `${STREAMS_PER_PERSON} streams per person (429).`,
        produces: ['text/event-stream'],
        response: {
          200: z.string().describe('the event stream'),
          429: errorBody,
        },
      },
    },
    async (request, reply) => {
      const principal = requireUser(request.principal);
      const open = perPerson.get(principal.userId) ?? 0;
      if (open >= STREAMS_PER_PERSON) {
        throw new AppError(
          'rate_limited',
          `${STREAMS_PER_PERSON} live update streams are open for you already: close a fleetgate tab`,
        );
      }
      perPerson.set(principal.userId, open + 1);
      const listener: Listener = { principal, reply };
      listeners.add(listener);
      reply.hijack();
      reply.raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
        // A stream holds its connection for as long as the page is open; once it ends, so does the connection
        // (kept alive, it would sit idle in the browser's pool and hold up the server's shutdown).
        connection: 'close',
      });
      // A reconnecting browser waits 3 s; the first line also tells the page the stream is open.
      reply.raw.write('retry: 3000\n: connected\n\n');
      const heartbeat = setInterval(() => reply.raw.write(': ping\n\n'), HEARTBEAT_MS).unref();
      reply.raw.on('close', () => {
        clearInterval(heartbeat);
        listeners.delete(listener);
        const left = (perPerson.get(principal.userId) ?? 1) - 1;
        if (left > 0) perPerson.set(principal.userId, left);
        else perPerson.delete(principal.userId);
      });
    },
  );

  app.addHook('preClose', async () => {
    stopPresence();
    stopChanges();
    for (const listener of listeners) end(listener, 'the server is stopping');
    await reading;
  });
}
