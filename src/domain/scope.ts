/**
 * Scopes name what an agent may do: `payments:transfer`, `mail:send:external`. Segments are
 * separated by `:`. Grants and narrow lists may use `*` as a wildcard for any run of characters,
 * `:` included, so `payments:*` covers `payments:transfer` and `payments:refund:partial`, and
 * `*:write` covers every scope that ends in `:write`.
 */
export const SCOPE_PATTERN = /^(?:[a-z0-9_.-]+|\*)(?::(?:[a-z0-9_.-]+|\*))*$/;
/** A concrete action an agent asks about: a scope without wildcards. */
export const ACTION_PATTERN = /^[a-z0-9_.-]+(?::[a-z0-9_.-]+)*$/;

const compiled = new Map<string, RegExp>();

function toRegExp(glob: string): RegExp {
  let re = compiled.get(glob);
  if (!re) {
    const body = glob
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*');
    re = new RegExp(`^${body}$`);
    // Scopes come from a small, validated set; the cache stays small in practice, but bound it.
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(glob, re);
  }
  return re;
}

/** True when `value` is matched by `glob` (exact match when the glob has no `*`). */
export function globMatches(glob: string, value: string): boolean {
  if (!glob.includes('*')) return glob === value;
  return toRegExp(glob).test(value);
}

/** True when two scope patterns could cover a common action (used to check a narrow hits anything). */
export function scopesOverlap(a: string, b: string): boolean {
  return globMatches(a, b) || globMatches(b, a);
}
