import { lookup as dnsLookup } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * The guard for URLs the server itself calls on someone's say-so (approval callbacks): without it an
 * API caller can make us POST, with retries, to our own loopback, the private network or the cloud
 * metadata service (SSRF).
 *
 * By default a callback may only reach public addresses. The check runs on every address the name
 * resolves to (one bad answer refuses the URL), at request creation and again at every delivery, and
 * the delivery connects to the address that was checked (pinned), so a DNS answer that changes
 * between check and connect (rebinding) gains nothing. Redirects are never followed.
 *
 * `ARMALO_CALLBACK_HOSTS` is the operator's explicit allow-list: when set, only hosts on it may be
 * called, and a host on it may resolve to a private address (an internal receiver the operator named).
 */

/** Who resolves names: node's resolver by default (the system's, like every other outbound call). */
export type ResolveAll = (hostname: string) => Promise<{ address: string; family: number }[]>;

export const resolveAll: ResolveAll = (hostname) =>
  new Promise((resolve, reject) => {
    // A resolver that does not answer must not hold a request (or a job) for long.
    const timer = setTimeout(() => reject(Object.assign(new Error('lookup timed out'), { code: 'ETIMEOUT' })), 5000);
    dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(addresses);
    });
  });

/** Address ranges a callback may not reach unless its host is on the allow-list, with a word for each. */
const FORBIDDEN: { net: string; prefix: number; family: 'ipv4' | 'ipv6'; what: string }[] = [
  { net: '0.0.0.0', prefix: 8, family: 'ipv4', what: 'an unspecified ("this network") address' },
  { net: '10.0.0.0', prefix: 8, family: 'ipv4', what: 'a private address' },
  { net: '100.64.0.0', prefix: 10, family: 'ipv4', what: 'a carrier-grade NAT address' },
  { net: '127.0.0.0', prefix: 8, family: 'ipv4', what: 'a loopback address' },
  { net: '169.254.0.0', prefix: 16, family: 'ipv4', what: 'a link-local address (cloud metadata lives here)' },
  { net: '172.16.0.0', prefix: 12, family: 'ipv4', what: 'a private address' },
  { net: '192.0.0.0', prefix: 24, family: 'ipv4', what: 'a protocol-assignment address' },
  { net: '192.168.0.0', prefix: 16, family: 'ipv4', what: 'a private address' },
  { net: '198.18.0.0', prefix: 15, family: 'ipv4', what: 'a benchmarking address' },
  { net: '224.0.0.0', prefix: 4, family: 'ipv4', what: 'a multicast address' },
  { net: '240.0.0.0', prefix: 4, family: 'ipv4', what: 'a reserved address' },
  { net: '::', prefix: 128, family: 'ipv6', what: 'the unspecified address' },
  { net: '::1', prefix: 128, family: 'ipv6', what: 'a loopback address' },
  // IPv4-compatible (deprecated) forms; the mapped ::ffff:0:0/96 is unwrapped and judged as IPv4 below.
  { net: '::', prefix: 96, family: 'ipv6', what: 'an IPv4-compatible address' },
  { net: '100::', prefix: 64, family: 'ipv6', what: 'a discard-only address' },
  { net: 'fc00::', prefix: 7, family: 'ipv6', what: 'a private (unique local) address' },
  { net: 'fe80::', prefix: 10, family: 'ipv6', what: 'a link-local address' },
  { net: 'fec0::', prefix: 10, family: 'ipv6', what: 'a site-local address' },
  { net: 'ff00::', prefix: 8, family: 'ipv6', what: 'a multicast address' },
];

const blocks = FORBIDDEN.map((range) => {
  const list = new BlockList();
  list.addSubnet(range.net, range.prefix, range.family);
  return { list, family: range.family, what: range.what };
});

/** The IPv4 address an IPv6 address carries (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16), if any. */
function embeddedIpv4(ipv6: string): string | undefined {
  const words = expandIpv6(ipv6);
  if (!words) return undefined;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  const zeros = (from: number, to: number) => words.slice(from, to).every((w) => w === 0);
  if (zeros(0, 5) && words[5] === 0xffff) return v4(words[6]!, words[7]!);
  if (words[0] === 0x64 && words[1] === 0xff9b && zeros(2, 6)) return v4(words[6]!, words[7]!);
  if (words[0] === 0x2002) return v4(words[1]!, words[2]!);
  return undefined;
}

/** Eight 16-bit words of an IPv6 address (with an optional dotted IPv4 tail), or undefined. */
function expandIpv6(address: string): number[] | undefined {
  let text = address.toLowerCase();
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const parts = dotted[1]!.split('.').map(Number);
    text = `${text.slice(0, dotted.index)}${((parts[0]! << 8) | parts[1]!).toString(16)}:${((parts[2]! << 8) | parts[3]!).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const words = [...head, ...Array<string>(Math.max(0, fill)).fill('0'), ...tail].map((w) => parseInt(w, 16));
  return words.length === 8 && words.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffff) ? words : undefined;
}

/** Why a callback may not reach this IP address, or null when it is a public address. */
export function forbiddenAddressReason(rawAddress: string): string | null {
  // A scoped IPv6 address (fe80::1%eth0) is judged by its address; the zone only picks the interface.
  const address = rawAddress.replace(/%.*$/, '');
  const version = isIP(address);
  if (version === 0) return 'not an IP address';
  if (version === 6) {
    const inner = embeddedIpv4(address);
    if (inner) {
      const reason = forbiddenAddressReason(inner);
      return reason ? `${reason} (as IPv6 ${address})` : null;
    }
  }
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const hit = blocks.find((b) => b.family === family && b.list.check(address, family));
  return hit ? hit.what : null;
}

/** Is this URL's host on the allow-list? Entries are exact hosts (with an optional port) or `*.domain`. */
export function callbackHostListed(url: URL, allowed: readonly string[]): boolean {
  const host = url.host.toLowerCase();
  const name = url.hostname.toLowerCase();
  return allowed.some((a) => (a.startsWith('*.') ? name.endsWith(a.slice(1)) : a === host || a === name));
}

export type CallbackTarget =
  | { ok: true; url: URL; /** The checked address to connect to (undefined: connect by name, allow-listed host). */ address: { address: string; family: 4 | 6 } | undefined }
  | { ok: false; reason: string; retryable: boolean };

/**
 * May the server call this URL now, and at which address? Answers a refusal (never throws) with a
 * reason that starts with what was wrong; `retryable` marks a DNS failure that may pass later.
 */
export async function checkCallbackTarget(rawUrl: string, allowed: readonly string[], resolve: ResolveAll = resolveAll): Promise<CallbackTarget> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    return { ok: false, reason: 'is not a URL', retryable: false };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, reason: `must be http or https, not ${url.protocol}`, retryable: false };
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (allowed.length > 0) {
    if (!callbackHostListed(url, allowed)) return { ok: false, reason: `host ${url.host} is not in ARMALO_CALLBACK_HOSTS`, retryable: false };
    // The operator named this host: it may be internal. Connect by name.
    return { ok: true, url, address: undefined };
  }
  let addresses: { address: string; family: number }[];
  if (isIP(hostname)) {
    addresses = [{ address: hostname, family: isIP(hostname) }];
  } else {
    try {
      addresses = await resolve(hostname);
    } catch (err) {
      return { ok: false, reason: `host ${hostname} does not resolve (${(err as NodeJS.ErrnoException).code ?? 'lookup failed'})`, retryable: true };
    }
    if (addresses.length === 0) return { ok: false, reason: `host ${hostname} does not resolve`, retryable: true };
  }
  for (const { address } of addresses) {
    const reason = forbiddenAddressReason(address);
    if (reason) {
      const what = address === hostname ? `host ${hostname} is ${reason}` : `host ${hostname} resolves to ${address}, ${reason}`;
      return { ok: false, reason: `${what}; callbacks go to public addresses only (an operator can allow an internal receiver with ARMALO_CALLBACK_HOSTS)`, retryable: false };
    }
  }
  const first = addresses[0]!;
  return { ok: true, url, address: { address: first.address, family: first.family === 6 ? 6 : 4 } };
}
