import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';

/**
 * POSTs to a URL, connecting to the given address instead of resolving the name again (the address
 * the callback guard checked). TLS still verifies the certificate against the URL's host name, and
 * the Host header is the URL's. Redirects are not followed: a 3xx is answered as it is.
 */
export async function postPinned(
  url: URL,
  address: { address: string; family: 4 | 6 } | undefined,
  init: { headers: Record<string, string>; body: string; timeoutMs: number },
): Promise<{ status: number; location: string | undefined }> {
  const pinned: LookupFunction | undefined = address
    ? (_hostname, options, callback) => {
        // Node asks for every address when it may try several (autoSelectFamily): give it the one.
        if ((options as { all?: boolean }).all) (callback as unknown as (err: null, all: { address: string; family: number }[]) => void)(null, [address]);
        else callback(null, address.address, address.family);
      }
    : undefined;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: 'POST',
        headers: { ...init.headers, 'content-length': String(Buffer.byteLength(init.body)) },
        ...(pinned ? { lookup: pinned } : {}),
        signal: AbortSignal.timeout(init.timeoutMs),
      },
      (res: IncomingMessage) => {
        // The answer's body is not needed: drain it so the socket is freed.
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}
