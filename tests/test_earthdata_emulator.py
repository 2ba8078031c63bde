"""The Earthdata emulator behaves like EDL and a DAAC on the wire: the rotator's tests are only as good as it is."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from local_stack.earthdata_emulator import AuthMode, EarthdataEmulator, Fault

CREDS = {
    "accessKeyId": "ASIAEMULATOR",
    "secretAccessKey": "emulator-secret",
    "sessionToken": "emulator-session",
    "expiration": "2099-01-01 00:00:00+00:00",
}


@pytest.fixture(scope="module")
def edl() -> Iterator[EarthdataEmulator]:
    with EarthdataEmulator(
        users={"alice": "wonderland"}, tokens=["pre-issued"], daacs={"daac-x": lambda: dict(CREDS)}, hang_seconds=0.5
    ) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _reset(edl: EarthdataEmulator) -> None:
    edl.clear_faults()
    edl.set_auth_mode("daac-x", AuthMode.BEARER_AND_REDIRECT)
    edl.reset_counts()


def _token(edl: EarthdataEmulator, password: str = "wonderland") -> requests.Response:
    return requests.post(f"{edl.base_url}/api/users/find_or_create_token", auth=("alice", password), timeout=5)


def test_token_endpoint_issues_one_token_per_user(edl):
    first, second = _token(edl).json(), _token(edl).json()
    assert first["access_token"] == second["access_token"]
    assert first["token_type"] == "Bearer"
    month, day, year = first["expiration_date"].split("/")
    assert len(month) == 2 and len(day) == 2 and len(year) == 4
    assert edl.count("token") == 2


def test_token_endpoint_refuses_bad_password_with_401_json(edl):
    response = _token(edl, "wrong")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_credentials"


def test_bearer_token_gets_credentials(edl):
    response = requests.get(edl.credentials_url("daac-x"), headers={"Authorization": "Bearer pre-issued"}, timeout=5)
    assert response.json() == CREDS


def test_redirect_flow_sets_cookie_and_returns_credentials(edl):
    session = requests.Session()
    first = session.get(edl.credentials_url("daac-x"), allow_redirects=False, timeout=5)
    assert first.status_code == 302 and first.headers["Location"].startswith(f"{edl.base_url}/oauth/authorize?")
    code = session.get(first.headers["Location"], auth=("alice", "wonderland"), allow_redirects=False, timeout=5)
    assert "code=" in code.headers["Location"]
    back = session.get(code.headers["Location"], allow_redirects=False, timeout=5)
    assert "daac-x-session=" in back.headers["Set-Cookie"]
    assert session.get(back.headers["Location"], timeout=5).json() == CREDS


def test_bad_password_at_authorize_gets_html_login_page_with_200(edl):
    first = requests.get(edl.credentials_url("daac-x"), allow_redirects=False, timeout=5)
    page = requests.get(first.headers["Location"], auth=("alice", "wrong"), allow_redirects=False, timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Earthdata Login" in page.text


def test_bearer_only_daac_refuses_without_token(edl):
    edl.set_auth_mode("daac-x", AuthMode.BEARER_ONLY)
    assert requests.get(edl.credentials_url("daac-x"), allow_redirects=False, timeout=5).status_code == 401


def test_redirect_only_daac_ignores_bearer_token(edl):
    edl.set_auth_mode("daac-x", "redirect-only")
    response = requests.get(
        edl.credentials_url("daac-x"), headers={"Authorization": "Bearer pre-issued"}, allow_redirects=False, timeout=5
    )
    assert response.status_code == 302


@pytest.mark.parametrize(
    ("fault", "status"),
    [("500", 500), ("401", 401), ("403", 403), ("html", 200), ("malformed", 200), ("missing_key", 200)],
)
def test_daac_fault_changes_the_answer(edl, fault, status):
    edl.set_fault(daac="daac-x", fault=fault)
    response = requests.get(edl.credentials_url("daac-x"), headers={"Authorization": "Bearer pre-issued"}, timeout=5)
    assert response.status_code == status
    assert response.content != json.dumps(CREDS).encode()


def test_missing_key_fault_drops_session_token(edl):
    edl.set_fault(daac="daac-x", fault=Fault.MISSING_KEY)
    body = requests.get(edl.credentials_url("daac-x"), headers={"Authorization": "Bearer pre-issued"}, timeout=5).json()
    assert "sessionToken" not in body and body["accessKeyId"] == CREDS["accessKeyId"]


def test_edl_maintenance_answers_503_html(edl):
    edl.set_fault(fault=Fault.MAINTENANCE)
    response = _token(edl)
    assert response.status_code == 503 and "maintenance" in response.text


def test_hang_fault_outlasts_a_short_read_timeout(edl):
    edl.set_fault(daac="daac-x", fault=Fault.HANG)
    with pytest.raises(requests.ReadTimeout):
        requests.get(edl.credentials_url("daac-x"), headers={"Authorization": "Bearer pre-issued"}, timeout=(2, 0.1))


def test_latency_delays_the_answer_without_changing_it(edl):
    edl.set_latency(2.0, daac="daac-x")
    with pytest.raises(requests.ReadTimeout):
        requests.get(edl.credentials_url("daac-x"), headers={"Authorization": "Bearer pre-issued"}, timeout=(2, 0.1))
    edl.set_latency(0, daac="daac-x")
    response = requests.get(edl.credentials_url("daac-x"), headers={"Authorization": "Bearer pre-issued"}, timeout=5)
    assert response.json() == CREDS
