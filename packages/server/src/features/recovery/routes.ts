import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idField, idParam, pageOf, pageQuery } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { deviceKeyString } from '../device-keys/routes.ts';
import { IMPORT_BATCH_MAX, importDevices } from './import.ts';
import { adoptRecoveryCandidates, discardRecoveryCandidates, listRecoveryCandidates } from './service.ts';

const candidateSchema = z.object({
  id: z.number(),
  uuid: z.string(),
  sourceIp: z.string().nullable(),
  agentVersion: z.string().nullable(),
  firstSeenAt: z.string(),
  lastSeenAt: z.string(),
  attempts: z.number(),
});
const candidateIds = z.array(idField).min(1).max(1000);
const deviceTypeSlug = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'a device type slug');
const uuid = z.string().regex(/^[0-9a-fA-F]{32}$/, '32 hexadecimal characters');

export function registerRecoveryRoutes(app: TypedApp, deps: ServiceDeps): void {
  const tags = ['recovery'];
  app.get(
    '/api/v1/recovery-candidates',
    {
      schema: {
        tags,
        summary: 'Unknown devices presenting uuid + key (after a database loss); server admins',
        querystring: z.object(pageQuery),
        response: { 200: pageOf(candidateSchema) },
      },
    },
    async (request) => listRecoveryCandidates(deps, actorOf(request), request.query),
  );
  app.post(
    '/api/v1/recovery-candidates/adopt',
    {
      schema: {
        tags,
        summary: 'Recreate candidates as devices of a fleet, with their own keys',
        body: z.strictObject({ ids: candidateIds, fleetId: idField, deviceType: deviceTypeSlug.optional() }),
        response: {
          200: z.object({
            items: z.array(
              z.object({
                id: z.number(),
                uuid: z.string().nullable(),
                outcome: z.enum(['adopted', 'not-found', 'conflict']),
                deviceId: z.number().optional(),
                reason: z.string().optional(),
              }),
            ),
          }),
        },
      },
    },
    async (request) => adoptRecoveryCandidates(deps, actorOf(request), request.body),
  );
  app.post(
    '/api/v1/recovery-candidates/discard',
    {
      schema: {
        tags,
        summary: 'Remove candidates from the queue',
        body: z.strictObject({ ids: candidateIds }),
        response: { 200: z.object({ discarded: z.number() }) },
      },
    },
    async (request) => discardRecoveryCandidates(deps, actorOf(request), request.body.ids),
  );
  app.delete(
    '/api/v1/recovery-candidates/:id',
    {
      schema: {
        tags,
        summary: 'Remove one candidate from the queue',
        params: z.object({ id: idParam }),
        response: { 200: z.object({ discarded: z.number() }) },
      },
    },
    async (request) => discardRecoveryCandidates(deps, actorOf(request), [request.params.id]),
  );
  app.post(
    '/api/v1/devices/import',
    {
      schema: {
        tags,
        summary: `Restore devices with their own uuid + key (balena config.json), up to ${IMPORT_BATCH_MAX} per call`,
        body: z.strictObject({
          items: z
            .array(
              z.strictObject({
                uuid,
                apiKey: deviceKeyString,
                fleetId: idField,
                deviceType: deviceTypeSlug.optional(),
                name: z
                  .string()
                  .trim()
                  .min(1)
                  .max(128)
                  .regex(/^[^\p{Cc}\p{Cs}]+$/u)
                  .optional(),
              }),
            )
            .min(1)
            .max(IMPORT_BATCH_MAX),
        }),
        response: {
          200: z.object({
            items: z.array(
              z.object({
                uuid: z.string(),
                outcome: z.enum(['created', 'present', 'failed']),
                deviceId: z.number().optional(),
                reason: z.string().optional(),
              }),
            ),
          }),
        },
      },
    },
    async (request) => importDevices(deps, actorOf(request), request.body.items),
  );
}
