import Ajv2020 from 'ajv/dist/2020';
import { describe, expect, it } from 'vitest';
import responseSchema from '../../schema/sentiment-model.response.v1.schema.json';

// The contract as a team's server would check its own answers against it (the client compiles the same file).
const validate = new Ajv2020({ strict: false }).compile(responseSchema);
const answer = (model: string, result: Record<string, unknown> = {}) => ({ model, results: [{ score: 0.1, ...result }] });

describe('sentiment-model.response.v1: names and languages that can be stored and logged', () => {
  it('takes ordinary model names, Unicode included, and language codes with subtags', () => {
    for (const model of ['acme-roberta-care-2026-11', 'modèle été 😀', 'a/b:c@1.2']) expect(validate(answer(model)), model).toBe(true);
    for (const lang of ['en', 'und', 'pt-BR', 'zh-Hant']) expect(validate(answer('m', { lang })), lang).toBe(true);
  });

  it('refuses a model name with a control character (NUL, escape sequences, bell, C1, line breaks) or a leading space', () => {
    for (const model of ['acme\u0000v2', 'acme\u001b[31mred', 'acme\u0007', 'acme\u0085', 'acme\nv2', 'acme\u2028v2', ' acme', '\u007facme']) {
      expect(validate(answer(model)), JSON.stringify(model)).toBe(false);
    }
  });

  it('refuses a language that is no language code', () => {
    for (const lang of ['e\u0000n', 'e\ud800n', '<script>', 'EN', 'en_US', 'x']) expect(validate(answer('m', { lang })), JSON.stringify(lang)).toBe(false);
  });
});
