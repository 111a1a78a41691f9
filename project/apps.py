from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """Project-wide commands (create_api_user) and nothing else."""

    name = "project"
    label = "project"
