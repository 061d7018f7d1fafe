// Meaning-preserving perturbations of a text: what a customer or a troll can write that reads the
// same to a person but not to a model. Used by `npm run eval:sentiment -- --perturb` and by
// src/sentiment/analyzer-perturbed.spec.ts. Each is deterministic: the same text gives the same result,
// whatever else was perturbed before it.
import { seededRandom } from '../../src/shared/seeded-random';

export interface Perturbation {
  name: string;
  /** what a reader sees: the same text, or the same words */
  about: string;
  apply(text: string): string;
}

/** Zero-width and other invisible characters people paste into words to dodge filters. */
export const INVISIBLES = ['\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\u00ad'];
/** Latin letters and the Cyrillic letters drawn the same. */
export const HOMOGLYPHS: Record<string, string> = { a: '\u0430', e: '\u0435', o: '\u043e', p: '\u0440', c: '\u0441', x: '\u0445' };

/** The shared seeded generator (mulberry32), seeded by an FNV-1a hash of the text and the perturbation's name. */
function randomFor(text: string, name: string): () => number {
  let h = 0x811c9dc5;
  const s = `${name}\u0000${text}`;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return seededRandom(h >>> 0);
}

// Links and @mentions stay as they are: nobody restyles an address, and a changed one is another address.
const KEEP = /https?:\/\/\S+|www\.\S+|@[\w.]+/g;

/** Applies `f` to the stretches of `text` outside links and @mentions. */
function outsideLinks(text: string, f: (s: string) => string): string {
  let out = '';
  let last = 0;
  for (const m of text.matchAll(KEEP)) {
    out += f(text.slice(last, m.index)) + m[0];
    last = m.index + m[0].length;
  }
  return out + f(text.slice(last));
}

const WORD = /[A-Za-z]{2,}/g;

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const MENTIONS = ['@acme', '@AcmeSupport', '@help_desk', '@jane.doe'];
const LINKS = ['https://t.co/Ab12Cd34', 'http://bit.ly/3xYz', 'https://www.example.com/orders/12345?ref=tw', 'www.example.org'];
const NEUTRAL_EMOJI = ['📦', '📱', '💻', '✈️', '👉', '🏠', '📷', '🎧'];

export const PERTURBATIONS: readonly Perturbation[] = [
  {
    name: 'zero-width',
    about: 'one of U+200B, U+200C, U+200D, U+2060, U+FEFF, U+00AD inside every word of two or more letters',
    apply(text) {
      const r = randomFor(text, this.name);
      return outsideLinks(text, (s) =>
        s.replace(WORD, (w) => {
          const at = 1 + Math.floor(r() * (w.length - 1));
          return w.slice(0, at) + INVISIBLES[Math.floor(r() * INVISIBLES.length)]! + w.slice(at);
        }),
      );
    },
  },
  {
    name: 'full-width',
    about: 'every printable ASCII character as its full-width form (U+FF01–U+FF5E)',
    apply(text) {
      return outsideLinks(text, (s) => s.replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0)));
    },
  },
  {
    name: 'math-bold',
    about: 'letters and digits as mathematical bold (U+1D400…, U+1D7CE…)',
    apply(text) {
      return outsideLinks(text, (s) =>
        s.replace(/[A-Za-z0-9]/g, (c) => {
          const k = c.charCodeAt(0);
          if (k <= 57) return String.fromCodePoint(0x1d7ce + k - 48);
          return String.fromCodePoint(k <= 90 ? 0x1d400 + k - 65 : 0x1d41a + k - 97);
        }),
      );
    },
  },
  {
    name: 'math-italic',
    about: 'letters as mathematical italic (U+1D434…; h is U+210E), as social media styles them',
    apply(text) {
      return outsideLinks(text, (s) =>
        s.replace(/[A-Za-z]/g, (c) => {
          if (c === 'h') return '\u210e';
          const k = c.charCodeAt(0);
          return String.fromCodePoint(k <= 90 ? 0x1d434 + k - 65 : 0x1d44e + k - 97);
        }),
      );
    },
  },
  {
    name: 'nfd',
    about: 'the text in NFD (accented letters as letter and combining mark)',
    apply(text) {
      return text.normalize('NFD');
    },
  },
  {
    name: 'zalgo-light',
    about: 'a combining mark (U+0300–U+036F) on three letters in ten',
    apply(text) {
      const r = randomFor(text, this.name);
      return outsideLinks(text, (s) =>
        s.replace(/[A-Za-z]/g, (c) => {
          if (r() >= 0.3) return c;
          let m = 0x300 + Math.floor(r() * 0x70);
          if (m === 0x34f) m = 0x301; // the grapheme joiner is no mark one sees
          return c + String.fromCharCode(m);
        }),
      );
    },
  },
  {
    name: 'homoglyph',
    about: 'half of the a e o p c x in words of two or more letters as Cyrillic а е о р с х',
    apply(text) {
      const r = randomFor(text, this.name);
      return outsideLinks(text, (s) => s.replace(WORD, (w) => w.replace(/[aeopcx]/g, (c) => (r() < 0.5 ? HOMOGLYPHS[c]! : c))));
    },
  },
  {
    name: 'all-caps',
    about: 'the text in capitals (links and @mentions as written)',
    apply(text) {
      return outsideLinks(text, (s) => s.toUpperCase());
    },
  },
  {
    name: 'elongation',
    about: 'in half of the words of three or more letters, the last vowel written five times ("soooo baaaad")',
    apply(text) {
      const r = randomFor(text, this.name);
      return outsideLinks(text, (s) =>
        s.replace(/[A-Za-z]{3,}/g, (w) => {
          if (r() >= 0.5) return w;
          const m = /[aeiouy](?=[^aeiouy]*$)/i.exec(w);
          return m ? w.slice(0, m.index) + m[0].repeat(5) + w.slice(m.index + 1) : w;
        }),
      );
    },
  },
  {
    name: 'lower-case',
    about: 'the text in lower case',
    apply(text) {
      return outsideLinks(text, (s) => s.toLowerCase());
    },
  },
  {
    name: 'title-case',
    about: 'every word capitalised, the rest of it in lower case ("Very Bad Service")',
    apply(text) {
      return outsideLinks(text, (s) => s.replace(/[A-Za-z]+/g, (w) => w[0]!.toUpperCase() + w.slice(1).toLowerCase()));
    },
  },
  {
    name: 'whitespace',
    about: 'spaces doubled or tripled, a line break after a sentence, blank lines and spaces around the text',
    apply(text) {
      const r = randomFor(text, this.name);
      const inner = text.replace(/([.!?]+)? +/g, (m, end: string | undefined) => (end !== undefined && r() < 0.7 ? `${end}\n${r() < 0.5 ? '\n' : ''}` : (end ?? '') + ' '.repeat(2 + Math.floor(r() * 2))));
      return `\n  ${inner} \n\n`;
    },
  },
  {
    name: 'html-entities',
    about: 'the text HTML-escaped, as a web form or a feed sends it (& < > " \' as &amp; &lt; &gt; &quot; &#39;)',
    apply(text) {
      return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
    },
  },
  {
    name: 'url-mention',
    about: 'an @mention before the text and a link after it',
    apply(text) {
      const r = randomFor(text, this.name);
      return `${MENTIONS[Math.floor(r() * MENTIONS.length)]!} ${text} ${LINKS[Math.floor(r() * LINKS.length)]!}`;
    },
  },
  {
    name: 'emoji',
    about: 'an emoji without sentiment (📦 📱 💻 ✈️ 👉 🏠 📷 🎧) after the text and after one word in ten',
    apply(text) {
      const r = randomFor(text, this.name);
      const pick = () => NEUTRAL_EMOJI[Math.floor(r() * NEUTRAL_EMOJI.length)]!;
      return `${outsideLinks(text, (s) => s.replace(/[A-Za-z]{2,}(?= )/g, (w) => (r() < 0.1 ? `${w} ${pick()}` : w)))} ${pick()}`;
    },
  },
  {
    name: 'punctuation-runs',
    about: 'every ! and ? written six times, every "..." as "......"',
    apply(text) {
      return outsideLinks(text, (s) => s.replace(/[!?]/g, (c) => c.repeat(6)).replace(/\.{3,}/g, '......'));
    },
  },
];
