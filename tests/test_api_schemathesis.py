"""Schemathesis against the OpenAPI document, once per role (admin, engineer, customer manager, customer).

Property-based requests generated from the schema must never produce a server error
(5xx), and responses must conform to the documented schemas.  Bounded: ``MAX_EXAMPLES``
per operation, derandomized.  (Schemathesis' pytest plugin does not load under pytest 9
here, so the operations are driven through its Python API with hypothesis directly.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from test_api import build_env  # tests/ is on sys.path (rootdir-relative test modules)

ROLES = ("admin", "engineer1", "li.wei", "acme-user")
MAX_EXAMPLES = 10


@pytest.fixture(scope="module")
def st_env(tmp_path_factory, influxd):
    env = build_env(tmp_path_factory.mktemp("api_st"), influxd)
    yield env
    env.client.close()
    env.influx.close()
    env.store.close()


def test_no_server_errors_and_schema_conformance_for_every_role(st_env):
    schema = schemathesis.openapi.from_asgi("/openapi.json", st_env.app)
    failures: list[str] = []
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 35
    calls = 0
    for op in operations:
        @given(case=op.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            nonlocal calls
            for role in ROLES:
                calls += 1
                case.call_and_validate(headers=st_env.as_(role),
                                       checks=[not_a_server_error, response_schema_conformance])

        try:
            run()
        except Exception as exc:            # collect every operation's failure, then report them all
            failures.append(f"{op.method.upper()} {op.path}: {str(exc)[:600]}")
    assert calls >= len(operations) * len(ROLES)
    assert failures == [], "\n\n".join(failures)
