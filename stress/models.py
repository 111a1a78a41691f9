from django.db import models


class StressEvent(models.Model):
    """One write of a queued baseline strategy (lock, serializable) in a stress run, recorded
    in the same transaction as the write itself, so its commit time is the write's."""

    run_id = models.CharField(max_length=40, db_index=True)
    request_id = models.CharField(max_length=100, unique=True)
    accepted_at = models.FloatField(help_text="producer's clock (epoch seconds) at publish")
    committed_at = models.FloatField(help_text="worker's clock just before commit")
    outcome = models.CharField(max_length=20)
    retries = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.run_id}/{self.request_id}: {self.outcome}"
