-- The 402 doctor reads the audit entries of a few targets (a subscription,
-- its consumer, their cards): one walk per target, newest first.
CREATE INDEX audit_log_by_target ON audit_log (target, seq);
