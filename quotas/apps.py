from django.apps import AppConfig


class QuotasConfig(AppConfig):
    name = "quotas"

    def ready(self) -> None:
        from quotas import services
        from writes.kinds import register_object_type

        register_object_type(
            label="quotas.quota",
            id_arg="quota_id",
            apply=services.quota_apply_writes,
            kinds=[services.KIND_CONSUME, services.KIND_REFILL],
        )
