import type { TrustPacket } from '../packets/packet.js';
import { clip, LIMITS, type Notice, type NoticeAction, type NoticeBlock, type Text } from './model.js';
import { plural } from './spans.js';

export interface PacketNoticeOptions {
  packetId: string;
  /** sha256 of the stored packet, shown shortened so a reader can compare it. */
  contentHash?: string | null;
  /** A signed, expiring link to the PDF (platforms that cannot attach the file). */
  downloadUrl?: string;
  /**
   * Where the PDF is: `attached` (uploaded with the notice), `link` (downloadUrl), `api` (neither:
   * the notice says how to fetch it with an API token). Defaults to `link` with a URL, else `attached`.
   */
  pdf?: 'attached' | 'link' | 'api';
}

/** A built trust packet's summary, for the channel it was asked in. */
export function packetNotice(packet: TrustPacket, opts: PacketNoticeOptions): Notice {
  const s = packet.summary;
  const title: Text = ['Trust packet: ', clip(packet.agent.name, 100), ' (', { code: packet.agent.id }, ')', ...(packet.audience ? [' for ', clip(packet.audience, 100)] : [])];
  const change = s.change30d !== null ? ` (${s.change30d >= 0 ? '+' : ''}${s.change30d} in 30 days)` : '';
  const stale = packet.evidence.staleCount;
  const pacts = packet.pacts.items;
  const pactsShown = pacts.slice(0, 20);
  const pactsText = pactsShown.length
    ? pactsShown.map((p) => `${clip(p.title, 120)} (${p.lastResult ?? 'unverified'}, ${p.freshness})`).join('; ') + (pacts.length > pactsShown.length ? `; …and ${pacts.length - pactsShown.length} more` : '')
    : 'none';
  const counts = packet.approvals.counts;
  const facts: { label: string; value: Text }[] = [
    { label: 'Score', value: [s.score === null ? 'none' : `${s.score}${s.tier ? ` (${s.tier})` : ''}`, ` · trend ${s.trend}${change}`] },
    // The newest item's freshness is said as such: "fresh" alone beside stale items would contradict the verdict.
    { label: 'Evidence', value: stale ? [`newest item ${s.evidence} · `, { strong: `${stale} of ${plural(packet.evidence.total, 'stale evidence item')}` }] : [`newest item ${s.evidence} · no stale evidence`] },
    { label: 'Pacts', value: [clip(pactsText, LIMITS.line)] },
    {
      label: 'Status',
      value: [`${packet.agent.status} · incidents (listed): ${packet.incidents.items.length} · approvals in ${packet.approvals.days} days: ${counts.approved} approved, ${counts.denied} denied`],
    },
    { label: 'Audit', value: packet.auditIntegrity.verified ? [`chain verified at entry ${packet.auditIntegrity.headSeq}`] : [{ strong: 'chain BROKEN' }, ` at entry ${packet.auditIntegrity.headSeq}`] },
  ];
  // The three questions of the packet's first page, each answered in one line.
  const answers: { label: string; value: Text }[] = [
    { label: 'Promised', value: [clip(packet.answers.promised, LIMITS.line)] },
    { label: 'Proof current', value: [clip(packet.answers.proofCurrent, LIMITS.line)] },
    { label: 'When the proof weakens', value: [clip(packet.answers.whenProofWeakens, LIMITS.line)] },
  ];
  const blocks: NoticeBlock[] = [{ kind: 'lines', lines: [[{ em: clip(s.verdict, LIMITS.line) }]] }, { kind: 'facts', facts: [...answers, ...facts] }];
  if (packet.scope) {
    const scope = packet.scope;
    blocks.push({
      kind: 'context',
      text: scope.missing
        ? ['Asked for workflow ', { code: scope.workflow }, ', which the policy no longer has: the packet is not scoped.']
        : ['Scoped to workflow ', { code: scope.workflow }, `: ${scope.grants.inScope} of ${scope.grants.total} grants, ${scope.routingRules.inScope} of ${scope.routingRules.total} routing rules, ${scope.consequenceRules.inScope} of ${scope.consequenceRules.total} consequence rules.`],
    });
  }
  const pdf = opts.pdf ?? (opts.downloadUrl ? 'link' : 'attached');
  if (pdf === 'api') {
    blocks.push({ kind: 'lines', lines: [['The PDF: ', { code: `GET /v1/trust-packets/${opts.packetId}?format=pdf` }, ' with an API token (download links need ARMALO_PUBLIC_URL and ARMALO_LINK_SECRET).']] });
  }
  blocks.push({
    kind: 'context',
    text: [`Packet ${opts.packetId}`, ...(opts.contentHash ? [` · sha256 ${opts.contentHash.slice(0, 16)}…`] : []), ' · verify with ', { command: `packet verify ${opts.packetId}` }],
  });
  const actions: NoticeAction[] = pdf === 'link' && opts.downloadUrl ? [{ kind: 'open-url', label: 'Download the full packet (PDF, link valid 24 h)', url: opts.downloadUrl }] : [];
  const audience = packet.audience ? ` for ${packet.audience}` : '';
  return {
    kind: 'packet',
    tone: !packet.auditIntegrity.verified || s.verdictLevel === 'alert' ? 'danger' : s.verdictLevel === 'caution' ? 'warning' : 'info',
    icon: 'packet',
    title,
    fallback: `Trust packet: ${packet.agent.name} (${packet.agent.id})${audience}`,
    blocks,
    actions,
  };
}
