import type http from 'node:http';
import { CrmCallFailed } from './crm-budget';

/** EARSHOT_CRM_MAX_RESPONSE_BYTES unless set: a 2,000-record query page or a 10,000-row Bulk CSV page is a few MB */
export const DEFAULT_CRM_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/**
 * The error of a CRM call whose reply body is larger than EARSHOT_CRM_MAX_RESPONSE_BYTES, named by
 * vendor, method and path (never by query string or token), with the size it declared when known.
 * A failed call, not a network error: it is not retried in place.
 */
export function responseTooLarge(vendor: string, method: string, path: string, max: number, declared: number | null): CrmCallFailed {
  const size = declared === null ? '' : ` (Content-Length ${declared})`;
  return new CrmCallFailed(`${vendor} ${method} ${path} answered with a body larger than ${bytes(max)}${size}; cut off there and the call failed (EARSHOT_CRM_MAX_RESPONSE_BYTES)`, null);
}

function bytes(n: number): string {
  return n % 1_048_576 === 0 ? `${n / 1_048_576} MiB` : `${n} bytes`;
}

/**
 * Ends `req` with `tooLarge` once its reply declares or delivers more than `max` body bytes, for
 * clients that read node:http replies themselves (HubSpot's buffers every chunk it is given). The
 * error is the reply's, so the client's own 'error' handler rejects with it; at most one chunk
 * past `max` is ever held.
 */
export function capNodeReply(req: http.ClientRequest, max: number, tooLarge: (declared: number | null) => Error): void {
  req.once('response', (res: http.IncomingMessage) => {
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) {
      res.destroy(tooLarge(declared));
      return;
    }
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max && !res.destroyed) res.destroy(tooLarge(null));
    });
  });
}
