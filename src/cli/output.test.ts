import { describe, expect, it } from 'vitest';
import { UsageError } from '../config/index.js';
import { formatTimeLeft, outputFormat, table } from './output.js';

describe('formatTimeLeft', () => {
  it.each([
    [26_400, '27s'],
    [1, '1s'],
    [1000, '1s'],
    [59_999, '1m'],
    [70_000, '1m10s'],
    [3_600_000, '1h'],
    [3_900_000, '1h5m'],
    [0, 'expired'],
    [-5000, 'expired'],
    [Number.NaN, 'expired'],
  ])('%d ms -> %s', (ms, text) => expect(formatTimeLeft(ms)).toBe(text));
});

describe('outputFormat', () => {
  it('takes table or json and rejects anything else as a usage error', () => {
    expect(outputFormat('json')).toBe('json');
    expect(outputFormat('table')).toBe('table');
    expect(() => outputFormat('yaml')).toThrow(UsageError);
  });
});

describe('table', () => {
  it('pads columns to the widest cell and trims line ends', () => {
    expect(table(['A', 'BB'], [['xyz', ''], ['1', '2']])).toBe('A    BB\nxyz\n1    2\n');
  });
});
