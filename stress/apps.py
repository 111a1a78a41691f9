from django.apps import AppConfig


class StressConfig(AppConfig):
    name = "stress"
