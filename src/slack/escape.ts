/**
 * The one escape for user-supplied text in Slack mrkdwn (agent names, owners, reasons, justifications,
 * audiences, pact titles, context values, actors we do not mention ourselves). Every Slack renderer
 * uses it; the notices redesign will too.
 *
 * Security decision: Slack's documented rule is that `&`, `<` and `>` are the control characters of
 * mrkdwn. Every mention (`<@U…>`, `<!subteam^…>`), channel link (`<#C…>`), broadcast (`<!channel>`,
 * `<!here>`), link (`<https://…|label>`) and date token needs a `<`, so once these three are entities
 * user text cannot notify anyone or hide a link target. (`@channel` typed as plain text is only turned
 * into a broadcast with `link_names`, which we never set.)
 *
 * Formatting characters (`*`, `_`, `~`, backtick) are left as typed: they can make user text bold or
 * italic, never mention, link or broadcast, and leaving them keeps ids such as `pay_bot` copyable
 * (zero-width characters inside an id break copy and paste). A bare URL stays a URL: Slack may link it,
 * but the link shows its real target.
 */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
