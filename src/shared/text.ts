/**
 * `s` cut to at most `max` UTF-16 code units (what `String#length` counts, and what Salesforce and
 * HubSpot count in a field's limit) without splitting a surrogate pair: `slice(0, max)` can end
 * in half of an emoji, a lone surrogate that PostgreSQL stores and JSON sends as U+FFFD or an
 * escape the receiver may refuse. The cut is then one unit shorter.
 */
export function cutText(s: string, max: number): string {
  if (s.length <= max) return s;
  if (max <= 0) return '';
  const last = s.charCodeAt(max - 1);
  const next = s.charCodeAt(max);
  // a high surrogate at the end whose low half would be cut off
  return last >= 0xd800 && last <= 0xdbff && next >= 0xdc00 && next <= 0xdfff ? s.slice(0, max - 1) : s.slice(0, max);
}
