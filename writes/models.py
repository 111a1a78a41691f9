from django.conf import settings
from django.db import models
from django.db.models.functions import Now


class WriteRequest(models.Model):
    """One accepted write. Committed before the 202; the truth about what happened to it.

    `id` is the acceptance order. A write is applied only while its row is `pending`, under a
    row lock, in the same transaction that moves it to `applied`/`refused`: that is what makes
    a redelivered or republished message harmless.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        APPLIED = "applied"
        REFUSED = "refused"
        FAILED = "failed"

    request_id = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=40)
    object_key = models.CharField(max_length=120)
    partition = models.PositiveSmallIntegerField()
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    result = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    accepted_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)
    # Application order: rows applied in one transaction share a value and were applied in
    # `id` order, so (applied_seq, id) is the order in which writes reached their objects.
    applied_seq = models.BigIntegerField(null=True, blank=True)
    # host:pid of the process that applied it (which partition owner did the work).
    applied_by = models.CharField(max_length=120, blank=True, default="")
    # Transient failures so far (a statement timeout, a deadlock: not a lost connection); at
    # DRAIN_MAX_ATTEMPTS the write is failed, so a poison write cannot hold up its partition.
    attempts = models.PositiveSmallIntegerField(db_default=0)
    # After a transient failure: not retried before then (back-off); its object waits.
    retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The drain's scan: the pending requests of one partition, oldest first.
            # (accepted_at included: the metrics' oldest-pending age reads the index only.)
            models.Index(
                fields=["partition", "id"],
                name="writes_pending_by_partition",
                condition=models.Q(state="pending"),
                include=["accepted_at"],
            ),
            # Retention: each partition's oldest rows first, without visiting the rest.
            models.Index(fields=["partition", "accepted_at"], name="writes_by_acceptance"),
            # A per-message task applies its object's pending requests up to its own.
            models.Index(
                fields=["object_key", "id"],
                name="writes_pending_by_object",
                condition=models.Q(state="pending"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=["pending", "applied", "refused", "failed"]),
                name="writes_writerequest_state_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(state="pending", finished_at__isnull=True)
                | (~models.Q(state="pending") & models.Q(finished_at__isnull=False)),
                name="writes_writerequest_finished_iff_not_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.kind} {self.object_key} [{self.state}]"

    @property
    def is_final(self) -> bool:
        return self.state != self.State.PENDING


class WriteCounter(models.Model):
    """A counter of the request log, exact and durable: incremented in the transaction that
    finishes writes (so it counts exactly what committed), one row per partition and name so
    that partitions never contend. Read by the metrics; pruning the log leaves it intact."""

    partition = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=120)
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["partition", "name"], name="writes_counter_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name}[{self.partition}] = {self.value}"
