from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import F, Q


class Quota(models.Model):
    """How many more times something may be done. Only the services change `remaining`.

    It guards one object of any model (generic, like the seed's OneToOneField), or none.
    The CHECK constraint is the final guard: no writer, however buggy, can take it below
    zero or above its limit.
    """

    content_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    object_id = models.CharField(max_length=64, null=True, blank=True)
    guarded_object = GenericForeignKey("content_type", "object_id")
    limit = models.BigIntegerField()
    remaining = models.BigIntegerField()
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="quotas",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [("consume_quota", "Can consume and refill any quota")]
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("limit")),
                name="quotas_quota_remaining_within_limit",
            ),
            models.CheckConstraint(
                condition=Q(limit__gte=0), name="quotas_quota_limit_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(content_type__isnull=True, object_id__isnull=True)
                | Q(content_type__isnull=False, object_id__isnull=False),
                name="quotas_quota_object_complete",
            ),
            # One quota per guarded object, as the seed's OneToOneField.
            models.UniqueConstraint(
                fields=["content_type", "object_id"],
                name="quotas_quota_one_per_object",
                condition=Q(content_type__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"quota #{self.pk}: {self.remaining}/{self.limit}"


class QuotaLedgerEntry(models.Model):
    """One consumption or refill request and what it did. `request_id` is the idempotency key.

    `delta` is the signed change it made to `remaining` (0 when refused), so for every quota
    `limit + sum(delta) == remaining`.
    """

    class Kind(models.TextChoices):
        CONSUME = "consume"
        REFILL = "refill"

    class Outcome(models.TextChoices):
        GRANTED = "granted"
        REFUSED = "refused"
        REFILLED = "refilled"
        # Only inside the applying transaction; never committed (see services).
        PENDING = "pending"

    quota = models.ForeignKey(Quota, on_delete=models.PROTECT, related_name="ledger")
    request_id = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    amount = models.BigIntegerField()
    delta = models.BigIntegerField(default=0)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason = models.CharField(max_length=40, blank=True, default="")
    remaining_after = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "quota ledger entries"
        indexes = [models.Index(fields=["quota", "id"], name="quotas_ledger_by_quota")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="quotas_ledger_amount_positive"),
            models.CheckConstraint(
                condition=Q(remaining_after__gte=0), name="quotas_ledger_remaining_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id}: {self.kind} {self.amount} -> {self.outcome}"
