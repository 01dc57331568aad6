import { z } from 'zod';
import { actorOf, type SameType, serializeUnchecked, type TypedApp } from '../../infra/http/index.ts';
import { idField, idParam, nameString, pageOf, pageQuery } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { registerTagRoutes } from '../tags/routes.ts';
import { deviceRefParam } from './resolve.ts';
import {
  createDevice,
  type DevicePage,
  type DeviceView,
  deleteDevice,
  deviceSorts,
  getDevice,
  listDevices,
  listDeviceTags,
  removeDeviceTag,
  setDeviceTag,
  updateDevice,
} from './service.ts';

import { deviceStatuses, linkKinds } from './status.ts';
import { DeviceTotals } from './totals.ts';

export const deviceSchema = z.object({
  id: z.number(),
  uuid: z.string(),
  name: z.string(),
  orgId: z.number(),
  fleetId: z.number(),
  fleetName: z.string(),
  deviceType: z.string(),
  notes: z.string(),
  status: z.enum(deviceStatuses),
  tags: z.record(z.string(), z.string()),
  /** Inventory attributes the device reported (Mender `PUT /api/devices/v1/inventory/device/attributes`). */
  attributes: z.record(z.string(), z.unknown()).nullable(),
  onlineVia: z
    .array(z.enum(linkKinds))
    .describe("the links the device is online through: its agent's tunnel, OpenVPN, mender-connect"),
  vpnAddress: z.string().nullable().describe('its VPN address while connected through OpenVPN'),
  connectedAt: z
    .string()
    .nullable()
    .describe('last tunnel connect (presence is written about once a second)'),
  disconnectedAt: z.string().nullable(),
  lastSeenAt: z.string().nullable(),
  agentVersion: z.string().nullable(),
  /** The agent's last state report (hostname, OS, kernel, uptime, memory, disk, addresses…). */
  state: z.record(z.string(), z.unknown()).nullable(),
  stateReportedAt: z.string().nullable(),
  variablesApplied: z
    .object({ revision: z.number(), at: z.string(), error: z.string().nullable() })
    .nullable()
    .describe('what the agent answered about the last variables it applied'),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const devicePageSchema = pageOf(
  deviceSchema.partial().required({ id: true }).describe('a device: with fields, only those keys and id'),
).extend({
  nextCursor: z.string().nullable().describe('pass as after to get the next page; null on the last page'),
});

// The list and a device's GET are written by `serializeUnchecked`: what the service builds must be what the
// schemas describe (the key order too: test/api/device-list-paging.test.ts compares with zod's output).
const viewIsSchema: SameType<DeviceView, z.output<typeof deviceSchema>> = true;
const pageIsSchema: SameType<DevicePage, z.output<typeof devicePageSchema>> = true;
void [viewIsSchema, pageIsSchema];

const deviceParams = z.object({ device: deviceRefParam });
const uuid = z.string().regex(/^[0-9a-fA-F]{32}$/, '32 hexadecimal characters');
const notes = z.string().max(8192);
const deviceTypeSlug = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'a device type slug');

export function registerDeviceRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['devices'];
  // This app's device totals, kept between list requests (dropped on this app's writes: see DeviceTotals).
  const totals = new DeviceTotals(deps.events);
  app.get(
    '/api/v1/devices',
    {
      schema: {
        tags,
        summary: 'Devices I can see, filtered and sorted',
        querystring: z.object({
          ...pageQuery,
          orgId: idParam.optional(),
          fleetId: idParam.optional(),
          tag: z.string().min(1).max(1200).optional().describe('key or key=value'),
          q: z.string().max(128).optional().describe('text in the name or uuid'),
          status: z.enum(deviceStatuses).optional(),
          deviceType: deviceTypeSlug.optional().describe('only devices of this device type'),
          sort: z
            .enum(deviceSorts)
            .optional()
            .describe(
              'default name; "-" sorts descending; ties go by id, ascending; lastSeenAt puts devices never seen last either way',
            ),
          after: z
            .string()
            .max(2048)
            .optional()
            .describe(
              'keyset paging: the nextCursor of the previous page, with the same sort and filters (then leave page out). Cheaper than page for deep pages: the server starts where the last page ended instead of skipping (page - 1) × limit devices',
            ),
          fields: z
            .string()
            .max(512)
            .regex(/^[A-Za-z]+(,[A-Za-z]+)*$/, 'device keys separated by commas')
            .optional()
            .describe(
              "the keys of each device to answer, separated by commas (e.g. name,status,lastSeenAt); id always comes. Default: every key. A table that shows a few columns is answered faster and smaller: a device's state report is most of its size",
            ),
        }),
        response: { 200: devicePageSchema },
      },
      // 50 devices a page, the API's most read answer: see `serializeUnchecked`.
      serializerCompiler: serializeUnchecked,
    },
    async (request) => listDevices(deps, actorOf(request), request.query, totals),
  );
  app.post(
    '/api/v1/devices',
    {
      schema: {
        tags,
        summary:
          'Add a device to a fleet by hand (devices also enroll themselves: provisioning key, signed auth request)',
        body: z.strictObject({
          fleetId: idField,
          deviceType: deviceTypeSlug.optional().describe("default: the fleet's default device type"),
          name: nameString.optional(),
          uuid: uuid.optional(),
          notes: notes.optional(),
        }),
        response: { 201: deviceSchema },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await createDevice(deps, actorOf(request), request.body)),
  );
  app.get(
    '/api/v1/devices/:device',
    {
      schema: { tags, summary: 'One device', params: deviceParams, response: { 200: deviceSchema } },
      serializerCompiler: serializeUnchecked,
    },
    async (request) => getDevice(deps, actorOf(request), request.params.device),
  );
  app.patch(
    '/api/v1/devices/:device',
    {
      schema: {
        tags,
        summary: 'Rename, annotate, retype or move a device to another fleet of its organization',
        params: deviceParams,
        body: z.strictObject({
          name: nameString.optional(),
          notes: notes.optional(),
          deviceType: deviceTypeSlug.optional(),
          fleetId: idField.optional(),
        }),
        response: { 200: deviceSchema },
      },
    },
    async (request) => updateDevice(deps, actorOf(request), request.params.device, request.body),
  );
  app.delete(
    '/api/v1/devices/:device',
    {
      schema: { tags, summary: 'Delete a device record', params: deviceParams, response: { 204: z.null() } },
    },
    async (request, reply) => {
      await deleteDevice(deps, actorOf(request), request.params.device);
      return reply.status(204).send(null);
    },
  );

  registerTagRoutes(app, {
    ownerPath: '/api/v1/devices/:device',
    ownerParam: 'device',
    ownerSchema: deviceRefParam,
    ownerName: 'device',
    tags,
    list: (actor, device) => listDeviceTags(deps, actor, device),
    set: (actor, device, key, value) => setDeviceTag(deps, actor, device, key, value),
    remove: (actor, device, key) => removeDeviceTag(deps, actor, device, key),
  });
}
