"""The seed races, grown up: `manage.py stress` compares write strategies under load."""
