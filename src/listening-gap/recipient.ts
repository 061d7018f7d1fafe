/** The handle a reply addresses: `metadata.recipientHandle`, else a leading `@handle` of its text. */
export function recipientOf(metadata: Record<string, unknown> | null | undefined, text: string): string | null {
  const r = metadata?.recipientHandle;
  if (typeof r === 'string' && r.trim()) return r.trim().replace(/^@/, '').toLowerCase();
  const m = /^\s*@([A-Za-z0-9_.-]{1,100})/.exec(text);
  return m ? m[1]!.toLowerCase() : null;
}

/** The author a listening item is kept for: the handle, else the e-mail, lower-cased. */
export function authorKeyOf(m: { author: { handle?: string | null; email?: string | null } }): string | null {
  return (m.author.handle ?? m.author.email ?? null)?.toLowerCase() ?? null;
}
