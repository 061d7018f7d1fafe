import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MODEL_NAME, defaultModel, modelPath } from './linear-model';
import { weightsHash } from './trainer';

// The committed weights are what `npm run train` produces (same data, same seed): retraining
// changes this hash, and then the model gets a new name, this hash and a new model card.
const COMMITTED_WEIGHTS_SHA256 = '849850491ba933710c91a4c5a526134154ead7e6ced5834be72d6b7f58a29655';

describe('the committed model', () => {
  it('is the trained artifact it claims to be: name, weights hash, header hash, size', () => {
    const model = defaultModel();
    expect(model.name).toBe(DEFAULT_MODEL_NAME);
    expect(weightsHash(model)).toBe(COMMITTED_WEIGHTS_SHA256);
    expect(model.header.weightsSha256).toBe(COMMITTED_WEIGHTS_SHA256);
    expect(model.header.training).toMatchObject({ seed: 20261130, complaintSetWeights: { cesamard: 0.3 } });
    expect(fs.statSync(modelPath()).size).toBeLessThanOrEqual(20 * 1048576);
  });
});
