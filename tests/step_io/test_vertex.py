"""The Vertex AI client's set-up: a dead endpoint or a bad credentials file is one line naming
the setting or the file, within seconds, before any call."""

from __future__ import annotations

import pytest
from local_servers import free_port

from yoda_step_io import StepError
from yoda_step_io.vertex import check_reachable, init_vertex


@pytest.mark.timeout(30)
def test_a_dead_endpoint_is_one_line_naming_its_setting() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(StepError) as error:
        init_vertex("yoda-project", "europe-west4", endpoint)
    assert f"YODA_VERTEX_API_ENDPOINT={endpoint!r}" in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.timeout(30)
def test_an_unknown_host_is_one_line() -> None:
    with pytest.raises(StepError, match=r"cannot reach Vertex AI at no-such-host\.invalid:443"):
        check_reachable("https://no-such-host.invalid", "europe-west4")


def test_a_bad_credentials_file_is_named(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "key.json"  # type: ignore[operator]
    bad.write_text("not a key")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(bad))
    with pytest.raises(StepError) as error:
        init_vertex("yoda-project", "europe-west4")
    assert str(error.value).startswith(f"GOOGLE_APPLICATION_CREDENTIALS={str(bad)!r} is not a")
