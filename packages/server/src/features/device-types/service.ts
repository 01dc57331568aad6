import { type Actor, authorize, readScope } from '../../infra/access/index.ts';
import type { Db } from '../../infra/db/index.ts';
import { AppError, notFound } from '../../infra/errors/index.ts';
import { type ServiceDeps, write } from '../../infra/service/index.ts';

export interface DeviceTypeView {
  id: number | null;
  orgId: number | null;
  slug: string;
  name: string;
  arch: string;
  builtin: boolean;
}

/** Device types every organization has, as balena and open-balena-admin name them. */
export const builtinDeviceTypes: readonly DeviceTypeView[] = (
  [
    ['generic-amd64', 'Generic x86_64 (GPT)', 'amd64'],
    ['generic-aarch64', 'Generic AARCH64', 'aarch64'],
    ['raspberry-pi', 'Raspberry Pi (v1 / Zero / Zero W)', 'rpi'],
    ['raspberrypi3', 'Raspberry Pi 3', 'armv7hf'],
    ['raspberrypi3-64', 'Raspberry Pi 3 (64-bit)', 'aarch64'],
    ['raspberrypi4-64', 'Raspberry Pi 4 (64-bit)', 'aarch64'],
    ['raspberrypi5', 'Raspberry Pi 5', 'aarch64'],
    ['raspberrypi0-2w-64', 'Raspberry Pi Zero 2 W (64-bit)', 'aarch64'],
    ['jetson-nano', 'Nvidia Jetson Nano', 'aarch64'],
    ['jetson-orin-nano-devkit-nvme', 'Nvidia Jetson Orin Nano', 'aarch64'],
    ['beaglebone-black', 'BeagleBone Black', 'armv7hf'],
    ['intel-nuc', 'Intel NUC', 'amd64'],
    ['qemux86-64', 'QEMU x86_64', 'amd64'],
  ] as const
).map(([slug, name, arch]) => ({ id: null, orgId: null, slug, name, arch, builtin: true }));

const builtinSlugs = new Set(builtinDeviceTypes.map((t) => t.slug));

/** Throws unless `slug` names a built-in type or a custom type of the organization. */
export async function assertDeviceType(db: Db, orgId: number, slug: string): Promise<void> {
  if (builtinSlugs.has(slug)) return;
  const custom = await db
    .selectFrom('device_types')
    .select('id')
    .where('org_id', '=', orgId)
    .where('slug', '=', slug)
    .executeTakeFirst();
  if (!custom) {
    throw new AppError(
      'bad_request',
      `unknown device type ${slug}: see GET /api/v1/device-types for the list`,
    );
  }
}

/** Built-in types plus the custom types of the organizations the caller sees (or of one of them). */
export async function listDeviceTypes(
  deps: ServiceDeps,
  actor: Actor,
  q: { orgId?: number | undefined },
): Promise<DeviceTypeView[]> {
  let orgIds = readScope(actor.principal, 'device_type.read').map((s) => s.orgId);
  if (q.orgId !== undefined) {
    authorize(actor.principal, 'device_type.read', { orgId: q.orgId }, 'organization');
    orgIds = [q.orgId];
  }
  const custom = orgIds.length
    ? await deps.db
        .selectFrom('device_types')
        .selectAll()
        .where('org_id', 'in', orgIds)
        .orderBy('slug')
        .execute()
    : [];
  return [
    ...builtinDeviceTypes,
    ...custom.map((r) => ({
      id: r.id,
      orgId: r.org_id,
      slug: r.slug,
      name: r.name,
      arch: r.arch,
      builtin: false,
    })),
  ];
}

export async function createDeviceType(
  deps: ServiceDeps,
  actor: Actor,
  input: { orgId: number; slug: string; name: string; arch: string },
): Promise<DeviceTypeView> {
  return write(deps, actor, { action: 'device_type.create', resourceType: 'device_type' }, async (trx) => {
    authorize(actor.principal, 'device_type.manage', { orgId: input.orgId }, 'organization');
    if (builtinSlugs.has(input.slug))
      throw new AppError('conflict', `${input.slug} is a built-in device type`);
    const taken = await trx
      .selectFrom('device_types')
      .select('id')
      .where('org_id', '=', input.orgId)
      .where('slug', '=', input.slug)
      .executeTakeFirst();
    if (taken) throw new AppError('conflict', `the organization already has a device type ${input.slug}`);
    const row = await trx
      .insertInto('device_types')
      .values({
        org_id: input.orgId,
        slug: input.slug,
        name: input.name,
        arch: input.arch,
        created_at: Date.now(),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return {
      value: {
        id: row.id,
        orgId: row.org_id,
        slug: row.slug,
        name: row.name,
        arch: row.arch,
        builtin: false,
      },
      orgId: input.orgId,
      resourceId: row.id,
      details: { slug: row.slug },
    };
  });
}

export async function deleteDeviceType(deps: ServiceDeps, actor: Actor, typeId: number): Promise<void> {
  await write(deps, actor, { action: 'device_type.delete', resourceType: 'device_type' }, async (trx) => {
    const row = await trx.selectFrom('device_types').selectAll().where('id', '=', typeId).executeTakeFirst();
    if (!row) throw notFound('device type');
    authorize(actor.principal, 'device_type.manage', { orgId: row.org_id }, 'device type');
    const used = await trx
      .selectFrom('devices')
      .select('id')
      .where('org_id', '=', row.org_id)
      .where('device_type', '=', row.slug)
      .limit(1)
      .executeTakeFirst();
    if (used) throw new AppError('conflict', `devices still use ${row.slug}: change their type first`);
    await trx.deleteFrom('device_types').where('id', '=', typeId).execute();
    return { value: undefined, orgId: row.org_id, resourceId: typeId, details: { slug: row.slug } };
  });
}
