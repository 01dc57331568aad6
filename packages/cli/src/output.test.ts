import { describe, expect, it } from 'vitest';
import { type Column, formatAgo, formatRecord, formatTable, formatValue, Output } from './output.ts';

interface Row {
  id: number;
  name: string;
  fleet: string | null;
  tags: Record<string, string>;
  online: boolean;
}

const rows: Row[] = [
  { id: 1, name: 'kiosk-17', fleet: 'lobby', tags: { site: 'paris', floor: '2' }, online: true },
  { id: 102, name: 'gw', fleet: null, tags: {}, online: false },
];

const columns: Column<Row>[] = [
  { header: 'ID', value: (row) => row.id },
  { header: 'NAME', value: (row) => row.name },
  { header: 'FLEET', value: (row) => row.fleet },
  { header: 'TAGS', value: (row) => row.tags },
  { header: 'ONLINE', value: (row) => row.online },
];

/** An Output writing into a string. */
function capture(json = false) {
  const written: string[] = [];
  const out = new Output({ write: (text: string) => written.push(text) }, { json });
  return { out, text: () => written.join('') };
}

describe('formatTable', () => {
  it('aligns columns under upper-case headers, without borders or trailing blanks', () => {
    expect(formatTable(rows, columns)).toBe(
      [
        'ID   NAME      FLEET  TAGS                 ONLINE',
        '1    kiosk-17  lobby  site=paris, floor=2  yes',
        '102  gw        -      -                    no',
        '',
      ].join('\n'),
    );
  });
});

describe('formatValue', () => {
  it('shows nothing as -, lists with commas, other objects as JSON, timestamps as given', () => {
    expect(formatValue(undefined)).toBe('-');
    expect(formatValue([1, 2])).toBe('1, 2');
    expect(formatValue({ count: 3 })).toBe('{"count":3}');
    expect(formatValue('2025-01-31T12:00:00.000Z')).toBe('2025-01-31T12:00:00.000Z');
    expect(formatValue('')).toBe('');
  });
});

describe('formatAgo', () => {
  const now = new Date('2026-01-10T12:00:00.000Z');
  it('says how long ago in the largest unit that fits', () => {
    expect(formatAgo('2026-01-10T11:59:48.000Z', now)).toBe('12 s ago');
    expect(formatAgo('2026-01-10T11:57:00.000Z', now)).toBe('3 min ago');
    expect(formatAgo('2026-01-10T07:00:00.000Z', now)).toBe('5 h ago');
    expect(formatAgo('2026-01-07T12:00:00.000Z', now)).toBe('3 days ago');
  });
  it('shows - for never, and a time slightly ahead of this clock as 0 s ago', () => {
    expect(formatAgo(null, now)).toBe('-');
    expect(formatAgo('2026-01-10T12:00:02.000Z', now)).toBe('0 s ago');
  });
});

describe('formatRecord', () => {
  it('prints aligned key: value lines, the given keys first', () => {
    expect(formatRecord({ notes: '', name: 'kiosk-17', id: 1, fleetIds: null }, ['id', 'name'])).toBe(
      ['id:       1', 'name:     kiosk-17', 'notes:', 'fleetIds: -', ''].join('\n'),
    );
  });
});

describe('Output', () => {
  const page = { items: rows, total: 2, page: 1, limit: 50 };

  it('prints the answer as 2-space JSON and nothing else with --json', () => {
    const { out, text } = capture(true);
    out.list(page, columns, 'devices');
    expect(text()).toBe(`${JSON.stringify(page, null, 2)}\n`);
    expect(JSON.parse(text())).toEqual(page);
  });

  it('prints records, confirmations and notes as JSON or text', () => {
    const json = capture(true);
    json.out.record({ id: 1 });
    json.out.done('deleted device 1');
    json.out.note('only for people');
    expect(json.text()).toBe('{\n  "id": 1\n}\n{\n  "ok": true\n}\n');

    const text = capture();
    text.out.record({ id: 1 });
    text.out.done('deleted device 1');
    text.out.note('only for people');
    expect(text.text()).toBe('id: 1\ndeleted device 1\nonly for people\n');
  });

  it('tells where the next page is when more items follow', () => {
    const { out, text } = capture();
    out.list({ items: rows, total: 5, page: 2, limit: 2 }, columns, 'devices');
    expect(text().split('\n').at(-2)).toBe('3-4 of 5 devices; next page: --page 3');
  });

  it('prints no page hint on the last page', () => {
    const { out, text } = capture();
    out.list(page, columns, 'devices');
    expect(text()).toBe(formatTable(rows, columns));
  });

  it('says so when a list is empty, or the page is beyond the end', () => {
    const empty = capture();
    empty.out.list({ items: [], total: 0, page: 1, limit: 50 }, columns, 'devices');
    expect(empty.text()).toBe('no devices\n');
    const beyond = capture();
    beyond.out.list({ items: [], total: 7, page: 3, limit: 50 }, columns, 'devices');
    expect(beyond.text()).toBe('no devices on page 3 (7 in all)\n');
  });
});
