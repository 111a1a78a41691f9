from django.apps import AppConfig


class TaggingConfig(AppConfig):
    name = "tagging"

    def ready(self) -> None:
        from tagging import services
        from writes.kinds import register_object_type

        register_object_type(
            label="tagging.image",
            id_arg="image_id",
            apply=services.image_apply_writes,
            kinds=[services.KIND_ADD_TAGS, services.KIND_REMOVE_TAGS],
        )
