import { describe, expect, it } from 'vitest';
import { isNickname, jaroWinkler, soundex, tokenSimilarity, withinOneEdit } from './similarity';

describe('jaroWinkler', () => {
  it('reproduces the values published by Winkler', () => {
    expect(jaroWinkler('martha', 'marhta')).toBeCloseTo(0.961, 3);
    expect(jaroWinkler('dwayne', 'duane')).toBeCloseTo(0.84, 3);
    expect(jaroWinkler('dixon', 'dicksonx')).toBeCloseTo(0.813, 3);
  });

  it('is 1 for equal strings, 0 for nothing in common or an empty side, and symmetric', () => {
    expect(jaroWinkler('jane', 'jane')).toBe(1);
    expect(jaroWinkler('abc', 'xyz')).toBe(0);
    expect(jaroWinkler('', 'jane')).toBe(0);
    expect(jaroWinkler('', '')).toBe(0);
    expect(jaroWinkler('harrington', 'harringotn')).toBe(jaroWinkler('harringotn', 'harrington'));
  });
});

describe('soundex', () => {
  it('codes names by the census rules', () => {
    expect(soundex('Robert')).toBe('R163');
    expect(soundex('Rupert')).toBe('R163');
    expect(soundex('Rubin')).toBe('R150');
    expect(soundex('Ashcraft')).toBe('A261');
    expect(soundex('Tymczak')).toBe('T522');
    expect(soundex('Pfister')).toBe('P236');
    expect(soundex('Honeyman')).toBe('H555');
    expect(soundex('')).toBe('');
  });
});

describe('withinOneEdit', () => {
  it('accepts one substitution, insertion, deletion or adjacent swap and nothing more', () => {
    expect(withinOneEdit('4810', '4818')).toBe(true);
    expect(withinOneEdit('4818', '4881')).toBe(true);
    expect(withinOneEdit('19081128', '1908128')).toBe(true);
    expect(withinOneEdit('38', '338')).toBe(true);
    expect(withinOneEdit('4810', '4801')).toBe(true);
    expect(withinOneEdit('4810', '4108')).toBe(false);
    expect(withinOneEdit('12', '1234')).toBe(false);
  });
});

describe('isNickname', () => {
  it('knows common diminutives in both directions', () => {
    expect(isNickname('bob', 'robert')).toBe(true);
    expect(isNickname('william', 'bill')).toBe(true);
    expect(isNickname('liz', 'elizabeth')).toBe(true);
    expect(isNickname('bob', 'william')).toBe(false);
  });
});

describe('tokenSimilarity', () => {
  it('does not care about the order of address lines', () => {
    const a = ['meldrum', 'street', 'forster', 'specialist', 'medical', 'centre'];
    const b = ['forster', 'specialist', 'medical', 'centre', 'meldrum', 'street'];
    expect(tokenSimilarity(a, b)).toBe(1);
    expect(tokenSimilarity(['goulburn', 'street'], ['quinlivan', 'crescent'])).toBeLessThan(0.7);
  });
});
