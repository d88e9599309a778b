"""`make run`'s embedded S3 server: started once, auth on, reused, stopped by `make stop`."""

import importlib.util
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from metis.objectstore import clients

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def local_services(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "local_services", ROOT / "scripts" / "local_services.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "SEAWEED", tmp_path / "seaweedfs")
    yield module
    module.stop_embedded_s3()


def test_embedded_s3_starts_with_auth_is_reused_and_stops(local_services):
    found = local_services.embedded_s3()
    endpoint = found["AWS_S3_ENDPOINT_URL"]
    client = clients.client_for(
        clients.Endpoint(
            url=endpoint,
            region="us-east-1",
            access_key=found["AWS_ACCESS_KEY_ID"],
            secret_key=found["AWS_SECRET_ACCESS_KEY"],
        )
    )
    client.create_bucket(Bucket=found["AWS_STORAGE_BUCKET_NAME"])
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{endpoint}/{found['AWS_STORAGE_BUCKET_NAME']}")
    assert anonymous.value.code == 403  # auth is on
    state = local_services._seaweed_state()
    assert local_services.embedded_s3() == found  # same keys, same port: reused, not restarted
    assert local_services._seaweed_state()["pid"] == state["pid"]
    local_services.stop_embedded_s3()
    assert not local_services._pid_alive(state["pid"])
    with pytest.raises(OSError):
        urllib.request.urlopen(endpoint, timeout=2)
