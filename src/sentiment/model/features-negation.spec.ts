import { describe, expect, it } from 'vitest';
import { tokenize } from '../sentiment.engine';
import { ROLE_NEGATES_NEGATIVE, ROLE_PLAIN } from './features';
import { Featurizer } from './trainer';

// A negator that negates a negative word ("no complaints", "never had an issue") is read apart
// from one that negates a positive word ("not happy"), and its scope ends at that word.
describe('negation of a negative word', () => {
  const f = new Featurizer(19);
  function read(text: string): { role: (w: string) => number; negated: (w: string) => boolean } {
    const fv = f.featuresOfTokens(tokenize(text));
    const at = (w: string) => {
      const i = fv.tokens.findIndex((t) => t.lower === w);
      expect(i, w).toBeGreaterThanOrEqual(0);
      return i;
    };
    return { role: (w) => fv.role[at(w)]!, negated: (w) => fv.negatedBy[at(w)]! >= 0 };
  }

  it('gives the negator a role of its own when it negates a negative word', () => {
    expect(read('No complaints about my parcel.').role('no')).toBe(ROLE_NEGATES_NEGATIVE);
    expect(read('Never had an issue with them.').role('never')).toBe(ROLE_NEGATES_NEGATIVE);
    expect(read('The phone is not expensive.').role('not')).toBe(ROLE_NEGATES_NEGATIVE);
    expect(read('I am not happy with the delivery.').role('not')).toBe(ROLE_PLAIN);
    expect(read('The parcel did not arrive.').role('not')).toBe(ROLE_PLAIN);
  });

  it('ends the scope after the first word with valence it negates', () => {
    const r = read('Not bad, slow app though');
    expect(r.negated('bad')).toBe(true);
    expect(r.negated('slow')).toBe(false);
    expect(read('I am not happy sad').negated('sad')).toBe(false);
    // words before the first rated one stay in scope
    expect(read('It was not at all bad').negated('bad')).toBe(true);
  });
});
