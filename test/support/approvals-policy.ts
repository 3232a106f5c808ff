/** A policy for the approvals tests: big payments need the risk owner and the CISO; risky agents need on-call. */
export const APPROVALS_TEST_POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }, { slack: U0ONCALL2 }] }
  ciso: { members: [{ slack: U0CISO, email: ciso@example.com }] }
  risk-owner: { members: [{ slack: U0RISK }, { email: risk2@example.com }] }
  platform: { members: [{ slack: U0OWNER, email: owner@example.com }] }
permissions:
  contain: [security-oncall, ciso]
  narrow: [security-oncall, ciso]
  revoke: [ciso]
  restore: [security-oncall, ciso]
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [risk-owner, ciso]
    quorum: 2
    remindAfter: 2s
    escalateAfter: 3s
    escalateTo: [security-oncall]
    expireAfter: 6s
  - id: mail-out
    match: { action: "mail:send" }
    approvers: [security-oncall, platform]
    grantFor: 1h
channels:
  incidents: { slack: C0INCIDENTS }
  approvals: { slack: C0APPROVALS }
`;
