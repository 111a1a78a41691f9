import pytest
from django.contrib.auth import get_user_model

from quotas.services import quota_consume
from tests.factories import ImageFactory, QuotaFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "path",
    [
        "tagging/image",
        "tagging/tag",
        "quotas/quota",
        "quotas/quotaledgerentry",
        "writes/writerequest",
    ],
)
def test_admin_lists_every_model(admin_client, path):
    ImageFactory()
    quota = QuotaFactory()
    quota_consume(quota_id=quota.pk, amount=1, request_id="r1")
    assert admin_client.get(f"/admin/{path}/").status_code == 200


def test_ledger_and_request_log_are_read_only(admin_client):
    quota = QuotaFactory()
    quota_consume(quota_id=quota.pk, amount=1, request_id="r1")
    assert admin_client.get("/admin/quotas/quotaledgerentry/add/").status_code == 403
    assert admin_client.get("/admin/writes/writerequest/add/").status_code == 403
    entry_id = quota.ledger.get().pk
    page = admin_client.get(f"/admin/quotas/quotaledgerentry/{entry_id}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
