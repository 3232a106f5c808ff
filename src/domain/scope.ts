/**
 * Scopes name what an agent may do: `payments:transfer`, `mail:send:external`. Segments are
 * separated by `:`. Grants and narrow lists may use `*` as a wildcard for any run of characters,
 * `:` included, so `payments:*` covers `payments:transfer` and `payments:refund:partial`, and
 * `*:write` covers every scope that ends in `:write`.
 */
export const SCOPE_PATTERN = /^(?:[a-z0-9_.-]+|\*)(?::(?:[a-z0-9_.-]+|\*))*$/;
/** A concrete action an agent asks about: a scope without wildcards. */
export const ACTION_PATTERN = /^[a-z0-9_.-]+(?::[a-z0-9_.-]+)*$/;

/**
 * True when `value` is matched by `glob` (exact match when the glob has no `*`).
 *
 * A linear-time wildcard matcher (greedy with one backtrack point), not a RegExp: patterns like
 * `*:*:*:*:x` turned into `.*:.*:.*` backtrack exponentially, and the decision path runs this on
 * input an API client controls. Worst case O(glob.length × value.length).
 */
export function globMatches(glob: string, value: string): boolean {
  if (!glob.includes('*')) return glob === value;
  let g = 0;
  let v = 0;
  let star = -1;
  let resume = 0;
  while (v < value.length) {
    if (g < glob.length && glob[g] !== '*' && glob[g] === value[v]) {
      g++;
      v++;
    } else if (g < glob.length && glob[g] === '*') {
      star = g++;
      resume = v;
    } else if (star !== -1) {
      g = star + 1;
      v = ++resume;
    } else {
      return false;
    }
  }
  while (g < glob.length && glob[g] === '*') g++;
  return g === glob.length;
}

/** True when two scope patterns could cover a common action (used to check a narrow hits anything). */
export function scopesOverlap(a: string, b: string): boolean {
  return globMatches(a, b) || globMatches(b, a);
}
