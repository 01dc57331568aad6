import { type Kysely, sql } from 'kysely';
import { trigramSchema } from '../trigram.ts';
import type { MigrationContext } from './index.ts';

/**
 * Text search in the device list (`q`, a part of a name or uuid) without reading every device. Without it a
 * search that matches few devices read all 100,000 of an organization's index entries, and their rows when the
 * list was sorted by last seen or the text could be in a uuid (130–180 ms a page).
 *
 * SQLite: `device_text`, an FTS5 index of each device's name and uuid in trigrams (any substring of 3 characters
 * or more is found through it, ignoring case), over the `devices` table itself (`content='devices'`: no copy of
 * the text) and kept by triggers, so every writer keeps it, whichever code path or process writes.
 *
 * PostgreSQL: GIN trigram indexes on `lower(name)` and `uuid`, through the pg_trgm extension (in PostgreSQL's
 * contrib modules; made in `public` when missing). A database that cannot have it keeps working without them: the
 * list then reads its sort's index as before, and `fleetgate doctor` says so.
 */
export async function up(db: Kysely<unknown>, { dialect }: MigrationContext): Promise<void> {
  if (dialect === 'postgres') {
    const schema = await trigramSchema((statement) => sql.raw(statement).execute(db), true);
    if (!schema) return;
    const ops = sql.raw(`"${schema.replaceAll('"', '""')}".gin_trgm_ops`);
    await sql`create index devices_name_trgm on devices using gin (lower(name) ${ops})`.execute(db);
    await sql`create index devices_uuid_trgm on devices using gin ((uuid::text) ${ops})`.execute(db);
    return;
  }
  await sql`create virtual table device_text using fts5(
    name, uuid, content='devices', content_rowid='id', tokenize='trigram')`.execute(db);
  await sql`create trigger device_text_insert after insert on devices begin
    insert into device_text (rowid, name, uuid) values (new.id, new.name, new.uuid);
  end`.execute(db);
  await sql`create trigger device_text_delete after delete on devices begin
    insert into device_text (device_text, rowid, name, uuid) values ('delete', old.id, old.name, old.uuid);
  end`.execute(db);
  await sql`create trigger device_text_update after update of name, uuid on devices begin
    insert into device_text (device_text, rowid, name, uuid) values ('delete', old.id, old.name, old.uuid);
    insert into device_text (rowid, name, uuid) values (new.id, new.name, new.uuid);
  end`.execute(db);
  await sql`insert into device_text (device_text) values ('rebuild')`.execute(db);
}

export async function down(db: Kysely<unknown>, { dialect }: MigrationContext): Promise<void> {
  if (dialect === 'postgres') {
    await sql`drop index if exists devices_uuid_trgm`.execute(db);
    await sql`drop index if exists devices_name_trgm`.execute(db);
    return;
  }
  for (const trigger of ['device_text_update', 'device_text_delete', 'device_text_insert'])
    await sql`drop trigger ${sql.ref(trigger)}`.execute(db);
  await sql`drop table device_text`.execute(db);
}
