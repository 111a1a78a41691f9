from django.apps import AppConfig


class QuotasConfig(AppConfig):
    name = "quotas"

    def ready(self) -> None:
        from quotas import invariants, services
        from writes.invariants import register_invariant
        from writes.kinds import register_object_type

        register_object_type(
            label="quotas.quota",
            id_arg="quota_id",
            apply=services.quota_apply_writes,
            kinds=[services.KIND_CONSUME, services.KIND_REFILL],
        )
        for name, check in (
            ("quota 0 <= remaining <= limit", invariants.remaining_within_limit),
            ("granted + remaining == limit", invariants.ledger_matches_remaining),
            ("no half-written ledger rows", invariants.no_half_written_ledger_rows),
            ("each quota request applied exactly once", invariants.requests_applied_once),
        ):
            register_invariant(name=name, label="quotas.quota", check=check)
