import { z } from 'zod';
import type { Actor } from '../../infra/access/index.ts';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { tagKey, tagValue } from '../../infra/http/schemas.ts';

export const tagsSchema = z.object({ tags: z.record(z.string(), z.string()) });

/** The three tag routes of one kind of owner (device or fleet), e.g. `/api/v1/devices/:device/tags`. */
export function registerTagRoutes<Ref>(
  app: TypedApp,
  options: {
    /** The owner's URL, with its parameter: `/api/v1/devices/:device`. */
    ownerPath: string;
    ownerParam: string;
    ownerSchema: z.ZodType<Ref, unknown>;
    ownerName: string;
    tags: string[];
    list(actor: Actor, owner: Ref): Promise<Record<string, string>>;
    set(actor: Actor, owner: Ref, key: string, value: string): Promise<void>;
    remove(actor: Actor, owner: Ref, key: string): Promise<void>;
  },
): void {
  const { ownerPath, ownerParam, ownerName, tags } = options;
  const ownerParams = z.object({ [ownerParam]: options.ownerSchema });
  const tagParams = z.object({ [ownerParam]: options.ownerSchema, key: tagKey });
  const ownerOf = (params: unknown) => (params as Record<string, Ref>)[ownerParam]!;
  const keyOf = (params: unknown) => (params as { key: string }).key;

  app.get(
    `${ownerPath}/tags`,
    {
      schema: { tags, summary: `A ${ownerName}'s tags`, params: ownerParams, response: { 200: tagsSchema } },
    },
    async (request) => ({
      tags: await options.list(actorOf(request), ownerOf(request.params)),
    }),
  );
  app.put(
    `${ownerPath}/tags/:key`,
    {
      schema: {
        tags,
        summary: `Set a ${ownerName} tag`,
        params: tagParams,
        body: z.strictObject({ value: tagValue }),
        response: { 204: z.null() },
      },
    },
    async (request, reply) => {
      await options.set(actorOf(request), ownerOf(request.params), keyOf(request.params), request.body.value);
      return reply.status(204).send(null);
    },
  );
  app.delete(
    `${ownerPath}/tags/:key`,
    {
      schema: { tags, summary: `Remove a ${ownerName} tag`, params: tagParams, response: { 204: z.null() } },
    },
    async (request, reply) => {
      await options.remove(actorOf(request), ownerOf(request.params), keyOf(request.params));
      return reply.status(204).send(null);
    },
  );
}
