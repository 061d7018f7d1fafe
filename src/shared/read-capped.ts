/**
 * The body of `res` as UTF-8 text, read no further than `max` bytes: past it (by its declared
 * Content-Length, or as it arrives) the body is cancelled and `tooLarge` is thrown, so a huge or
 * endless answer costs at most `max` bytes of memory.
 */
export async function readCapped(res: Response, max: number, tooLarge: (declared: number | null) => Error): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge(declared);
  }
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge(null);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
