"""Diagnose an endpoint from Python: what ``azml-chat doctor URL`` prints, as values.

``diagnose()`` sends a bounded number of tiny requests and returns every probe's finding,
the setup that works and a ``ChatClient(...)`` snippet. Here it examines an embedded
dedicated endpoint whose model family (Mistral) it learns from ``/info``; point it at your
own endpoint URL and key instead. Run it with ``python examples/doctor.py``.
"""

from __future__ import annotations

from azml_chat.cli.doctor import diagnose
from azml_chat.testing import LocalEndpoint


def main() -> None:
    with LocalEndpoint(kind="dedicated", family="mistral", model_name="Mistral-7B-Instruct-v0.3") as endpoint:
        diagnosis = diagnose(endpoint.url, "test-key")
    for probe in diagnosis.probes:
        print(f"{'ok' if probe.ok else 'no' if probe.ok is False else '--'}  {probe.name}")
    assert diagnosis.setup is not None
    print(
        f"\n{diagnosis.requests} requests; use formatter={diagnosis.setup.formatter!r}, "
        f"auth_header={diagnosis.setup.auth_header!r}:\n"
    )
    print(diagnosis.snippet())


if __name__ == "__main__":
    main()
