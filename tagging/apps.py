from django.apps import AppConfig


class TaggingConfig(AppConfig):
    name = "tagging"

    def ready(self) -> None:
        from tagging import invariants, services
        from writes.invariants import register_invariant
        from writes.kinds import register_object_type

        register_object_type(
            label="tagging.image",
            id_arg="image_id",
            apply=services.image_apply_writes,
            kinds=[services.KIND_ADD_TAGS, services.KIND_REMOVE_TAGS],
        )
        register_invariant(
            name="one link per (image, tag)",
            label="tagging.image",
            check=invariants.one_link_per_pair,
        )
