"""Code versions on record (docs/safe-deploys.md): the version that created an
execution, the versions that ran it, and workers pinned to one version."""

from __future__ import annotations

from conftest import drain

import zart
from zart import durable, step
from zart._execution._durable import code_version


@step("v-one")
async def one() -> int:
    return 1


@durable("v-flow")
async def versioned() -> int:
    value = await one()
    await zart.wait_for_event("go")
    return value


def test_the_default_version_is_a_hash_of_the_registered_durables(db_url: str) -> None:
    with zart.Zart(db_url) as app:
        app.submit(versioned, execution_id="dv-1")
        status = app.status("dv-1")
        assert status.version == code_version() and len(code_version()) == 12
        assert status.ran_versions == ()  # created, not run yet
        assert status.as_dict()["version"] == code_version()


def test_the_versions_that_ran_an_execution_are_recorded_in_order(db_url: str) -> None:
    with zart.Zart(db_url, version="v1") as old:
        old.submit(versioned, execution_id="rv-1")
        drain(old)  # runs the first step, then waits for "go"
        assert old.status("rv-1").ran_versions == ("v1",)
    with zart.Zart(db_url, version="v2") as new:
        new.send_event("rv-1", "go", None)
        assert new.run(versioned, execution_id="rv-1") == 1
        status = new.status("rv-1")
        assert (status.version, status.ran_versions) == ("v1", ("v1", "v2"))
        assert status.as_dict()["ran_versions"] == ["v1", "v2"]


def test_a_worker_pinned_to_a_version_serves_only_its_executions(db_url: str) -> None:
    with zart.Zart(db_url, version="v1") as v1, zart.Zart(db_url, version="v2") as v2:
        v1.submit(versioned, execution_id="pin-1")
        v2.submit(versioned, execution_id="pin-2")
        drain(v2, only_version="v2")
        assert v2.status("pin-2").status == "waiting"  # ran up to its wait
        assert v2.status("pin-1").status == "pending"  # not v2's: left alone
        drain(v1, only_version="v1")
        assert v1.status("pin-1").status == "waiting"
