"""The audit trail: sealing entries into per-organisation hash chains, verifying them,
and reading them (the writer itself is ``src.app.core.audit``)."""
