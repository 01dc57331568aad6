import { describe, expect, it } from 'vitest';
import { CsvError, parseCsv, preauthRows } from './preauth-csv.ts';

describe('the preauthorization CSV', () => {
  it('reads quoted fields with commas, quotes and line breaks, with their line numbers', () => {
    const text = 'identity,public_key,name\r\n"{""serial"":""P1""}","-----BEGIN\nKEY-----",first\n\n{},k2,\n';
    expect(parseCsv(text)).toEqual([
      { line: 1, fields: ['identity', 'public_key', 'name'] },
      { line: 2, fields: ['{"serial":"P1"}', '-----BEGIN\nKEY-----', 'first'] },
      { line: 5, fields: ['{}', 'k2', ''] },
    ]);
    expect(preauthRows(text)).toEqual([
      { line: 2, identity: { serial: 'P1' }, publicKey: '-----BEGIN\nKEY-----', name: 'first' },
      { line: 5, identity: {}, publicKey: 'k2' },
    ]);
  });

  it('answers a row whose identity is not JSON with its problem, and reads the rows after it', () => {
    const rows = preauthRows('\uFEFFIdentity,Public_Key\nserial=P1,k1\n"{""serial"":""P2""}",k2\n');
    expect(rows[0]).toMatchObject({
      line: 2,
      problem: 'line 2: the identity is not JSON such as {"serial":"P0001"}',
    });
    expect(rows[1]).toEqual({ line: 3, identity: { serial: 'P2' }, publicKey: 'k2' });
  });

  it('refuses a file it cannot read, saying why', () => {
    expect(() => preauthRows('')).toThrow(new CsvError('the CSV is empty'));
    expect(() => preauthRows('serial,key\nP1,k1\n')).toThrow(/must name the columns identity and public_key/);
    expect(() => preauthRows('identity,public_key\n"{,k1\n')).toThrow(
      /unterminated quoted field \(from line 2\)/,
    );
  });
});
