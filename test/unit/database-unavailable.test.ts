import { describe, expect, it } from 'vitest';
import { isDatabaseUnavailable } from '../../src/db/database.js';

describe('isDatabaseUnavailable: Postgres away (503) or a failed query (500)', () => {
  it.each([
    ['a refused connection', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })],
    ['a reset connection', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })],
    ['a connection dropped mid-query', new Error('Connection terminated unexpectedly')],
    ['a connect timeout', new Error('timeout exceeded when trying to connect')],
    ['SQLSTATE 08006 (connection failure)', Object.assign(new Error('connection failure'), { code: '08006' })],
    ['SQLSTATE 57P01 (admin shutdown)', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })],
    ['SQLSTATE 57P03 (cannot connect now)', Object.assign(new Error('the database system is starting up'), { code: '57P03' })],
    ['a wrapped cause', new Error('transaction failed', { cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) })],
  ])('%s is unavailable', (_what, err) => {
    expect(isDatabaseUnavailable(err)).toBe(true);
  });

  it.each([
    ['a unique violation', Object.assign(new Error('duplicate key value'), { code: '23505' })],
    ['a syntax error', Object.assign(new Error('syntax error at or near'), { code: '42601' })],
    ['a statement timeout (the query ran)', Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' })],
    ['a plain error', new Error('something else')],
    ['not an error', 'ECONNREFUSED'],
    ['null', null],
  ])('%s is not', (_what, err) => {
    expect(isDatabaseUnavailable(err)).toBe(false);
  });
});
