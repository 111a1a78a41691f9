"""The request log: every accepted write is a row here before it is applied.

Acceptance, ordering, idempotency, coalesced draining and reconciliation of writes live in this
app; what a write *does* lives in the app that owns the object (tagging, quotas).
"""
