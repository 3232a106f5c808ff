/**
 * The one escape for user-supplied text in Teams (Adaptive Card TextBlocks and FactSet values, and
 * message text, which Teams renders as Markdown by default). Every Teams renderer uses it; the
 * notices redesign will too.
 *
 * Security decision: Teams renders a subset of Markdown (links, bold and italic, bulleted and numbered
 * lists) and, in message text, some HTML. A backslash before ASCII punctuation is CommonMark's escape,
 * so user text keeps its characters but loses their meaning:
 * - anywhere: `\` `*` `_` `~` `` ` `` `[` `]` `(` `)` `<` `>` (a link needs `[…](…)` or `<…>`, emphasis
 *   `*` or `_`, HTML a `<`);
 * - at the start of a line (of the text, or after a newline inside it): `-` `+` `#` `=` `|` and a
 *   number followed by `.` or `)`, which would start a list, heading or table.
 * `-`, `+`, `#` and digits are escaped only where they mean something (line starts), so ids such as
 * `pay-bot-1` stay as they are in the card. A bare URL stays a URL: Teams may link it, but the link
 * shows its real target.
 */
export function escapeMarkdown(text: string): string {
  return text
    .replace(/[\\`*_~[\]()<>]/g, '\\$&')
    .replace(/^([ \t]*)([-+#=|])/gm, '$1\\$2')
    .replace(/^([ \t]*\d{1,9})([.)])/gm, '$1\\$2');
}
