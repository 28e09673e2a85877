"""Bounded decoding: a document nested 100,000 deep is refused with its stable id at every
entry point that reads untrusted JSON or TOML, in an interpreter that has imported the chain
stack (whose recursion limit of 100,000 turned such input into SIGSEGV), and the process
goes on. Fuzzed: the request, receipt and spec decoders never raise anything but their own
refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chronoseal._decode import MAX_DEPTH, DocumentRefused, loads_json, loads_toml
from chronoseal.errors import ChronosealError, PeerRefused, SpecError
from chronoseal.prediction import AuditError, Receipt, read_receipts
from chronoseal.prediction._wire import decode_request
from chronoseal.spec import parse_spec

DEEP = 100_000
SRC = str(Path(__file__).resolve().parents[1] / "src")
FUZZ_EXAMPLES = int(os.environ.get("CHRONOSEAL_FUZZ_EXAMPLES", "300"))


def _python(script: str, tmp_path: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    "text",
    [
        "[" * DEEP,
        "[" * DEEP + "]" * DEEP,
        '{"a":' * DEEP + "1" + "}" * DEEP,
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
    ],
)
def test_json_nested_too_deep_is_refused_before_it_is_parsed(text: str) -> None:
    with pytest.raises(DocumentRefused, match="deeper"):
        loads_json(text, max_bytes=1 << 20)


def test_json_within_bounds_decodes_and_brackets_in_strings_do_not_count() -> None:
    doc = {"s": "[[[[{{{{" * 100, "n": [[[1]]]}
    assert loads_json(json.dumps(doc).encode(), max_bytes=1 << 20) == doc
    assert loads_json("[" * MAX_DEPTH + "]" * MAX_DEPTH, max_bytes=1 << 20) is not None
    with pytest.raises(DocumentRefused, match="larger"):
        loads_json(b"[1]" + b" " * 100, max_bytes=64)
    with pytest.raises(DocumentRefused, match="UTF-8"):
        loads_json(b'"\xff"', max_bytes=64)
    with pytest.raises(json.JSONDecodeError):
        loads_json("{not json", max_bytes=64)


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * DEEP,
        "a = " + "{b = " * DEEP,
        "a" + ".a" * DEEP + " = 1",
        "[" + "a." * DEEP + "a]",
        'a = """x"""" ' + "[" * DEEP + '"',  # a closing quote run that ends in a quote
    ],
)
def test_toml_nested_too_deep_is_refused(text: str) -> None:
    with pytest.raises(DocumentRefused):
        loads_toml(text, max_bytes=4 << 20)


def test_toml_within_bounds_decodes_as_tomllib_does() -> None:
    text = 'x = [1.5, 2.5]\ns = "[[[[ # ]]"\nm = """\n[[[\n"""\n[a.b]\nc.d = {e = [1]}\n'
    assert loads_toml(text, max_bytes=1 << 20) == {
        "x": [1.5, 2.5],
        "s": "[[[[ # ]]",
        "m": "[[[\n",
        "a": {"b": {"c": {"d": {"e": [1]}}}},
    }


def test_importing_the_chain_stack_leaves_the_recursion_limit_where_python_keeps_it(
    tmp_path: Path,
) -> None:
    done = _python(
        """
        import sys
        before = sys.getrecursionlimit()
        import chronoseal.ledger, chronoseal.prediction, web3, eth, py_ecc
        from chronoseal._decode import restore_recursion_limit
        restore_recursion_limit()
        print(before, sys.getrecursionlimit())
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    assert after == before <= 10_000


def test_every_entry_point_refuses_a_deep_document_with_its_id(tmp_path: Path) -> None:
    """``spec check``, ``predict verify-receipt``, ``audit --receipt``, a party's config and
    its reviewer's spec directory, in one interpreter with the chain stack imported."""
    (tmp_path / "deep.json").write_text("[" * DEEP)
    (tmp_path / "deep.toml").write_text("a = " + "[" * DEEP)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "deep.toml").write_text("a = " + "{b = " * DEEP)
    done = _python(
        """
        import sys
        import eth, py_ecc, web3  # the chain stack, imported first as a node imports it
        sys.setrecursionlimit(100_000)  # as py-evm and py_ecc leave it
        from pathlib import Path
        from typer.testing import CliRunner
        from chronoseal.cli import app
        from chronoseal.errors import ConfigError
        from chronoseal.node._party import spec_directory
        from chronoseal.spec import load_party_config

        cli = CliRunner()
        chain = ["--chain", "http://127.0.0.1:9", "--contract", "0x" + "22" * 20]
        for args in (
            ["spec", "check", "deep.toml"],
            ["predict", "verify-receipt", "deep.json", *chain],
            ["audit", "0x" + "11" * 32, "--rpc", "http://127.0.0.1:9",
             "--contract", "0x" + "22" * 20, "--receipt", "deep.json"],
        ):
            result = cli.invoke(app, args)
            print(args[0], result.exit_code, " ".join(result.output.split()))
        try:
            load_party_config(Path("deep.toml"))
        except ConfigError as exc:
            print("party", exc.id)
        logged = []
        found = spec_directory(Path("specs"), lambda m, event=None: logged.append(event))()
        print("reviewer", len(found), logged)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["spec"].startswith("2 ") and "spec.toml.invalid" in lines["spec"]
    assert lines["predict"].startswith("1 ") and "prediction.receipt.malformed" in lines["predict"]
    assert lines["audit"].startswith("2 ") and "prediction.receipt.malformed" in lines["audit"]
    assert lines["party"] == "config.file.invalid"
    assert lines["reviewer"] == "0 ['spec.toml.invalid']"


FORECAST_OVER_THE_CHANNEL = """
    import shutil, sys
    from pathlib import Path
    from eth_account import Account
    from chronoseal.attest import attester_for
    from chronoseal.channel import StreamContext
    from chronoseal.node import DemoConsortium, bundled_scenario, load_scenario
    from chronoseal.prediction import PredictionRuntime
    from chronoseal.prediction._wire import REQUEST_STREAM
    from chronoseal.spec import Component

    assert sys.getrecursionlimit() <= 10_000

    class Probe(DemoConsortium):
        def serve(self, analysis, gateways):
            key = Account.create()
            self.chain.fund(key.address, 10**20)
            runtime = PredictionRuntime(
                self.consortium, self.spec,
                attester=attester_for(self.spec.measurements.prediction.tee,
                                      Component.PREDICTION),
                chain_key=key.key,
            )
            runtime.start()
            try:
                analysis.hand_over(runtime.address("handover"))
                assert runtime.wait_serving(60)
                with self._client("transit") as client:
                    client.open(runtime.address("forecasts"))
                    for body in (b"[" * 100_000, b'{"a":' * 100_000, b"x" * (2 << 20)):
                        client._open_channel().send_stream(
                            StreamContext(self.task_id, "*", REQUEST_STREAM), [body]
                        )
                        header, _ = client._receive()
                        print("deep", header.get("refused"))
                    print("after", client.forecast().refused)  # the runtime still answers
            finally:
                runtime.stop()
            return None

    root = Path("chicago")
    shutil.copytree(bundled_scenario().parent, root)
    task = root / "task.toml"
    text = task.read_text().replace("windows = 13", "windows = 2")
    task.write_text(text.replace("contribution = {", "# contribution = {"))
    Probe(load_scenario(root / "scenario.toml"), lambda _: None).run("serving")
"""


def test_a_deep_forecast_request_over_the_channel_is_refused_and_serving_goes_on(
    tmp_path: Path,
) -> None:
    done = _python(FORECAST_OVER_THE_CHANNEL, tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [x for x in lines if x.startswith("deep")] == ["deep prediction.request.malformed"] * 3
    # the runtime still answers, on the request's merits: no feed was sent yet
    assert "after prediction.feed.missing" in lines


# ------------------------------------------------------------------ bounded fuzzing

JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _mutations() -> st.SearchStrategy[bytes]:
    documents = JSON_VALUES.map(lambda v: json.dumps(v).encode())
    brackets = st.integers(min_value=0, max_value=5000).map(lambda n: b"[" * n + b"]" * n)
    return documents | brackets | st.binary(max_size=200)


@FUZZ
@given(data=_mutations(), request=st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6))
def test_fuzz_the_request_decoder_refuses_with_its_id_or_decodes(
    data: bytes, request: dict[str, object]
) -> None:
    for body in (data, json.dumps(request).encode()):
        try:
            decoded = decode_request(body)
        except PeerRefused as exc:
            assert exc.id == "prediction.request.malformed"
        else:
            assert isinstance(decoded, dict)


@FUZZ
@given(data=_mutations())
def test_fuzz_the_receipt_decoder_refuses_with_its_id_or_decodes(
    data: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("receipt") / "r.json"
    path.write_bytes(data)
    try:
        receipts = read_receipts(path)
    except AuditError as exc:
        assert exc.id == "prediction.receipt.malformed"
    else:
        assert all(isinstance(r, Receipt) for r in receipts)


TOML_KEYS = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)


@FUZZ
@given(
    text=st.text(max_size=300)
    | st.integers(min_value=0, max_value=5000).map(lambda n: "a = " + "[" * n + "]" * n)
    | st.dictionaries(TOML_KEYS, JSON_VALUES, max_size=6).map(
        lambda d: "\n".join(f"{k} = {json.dumps(v)}" for k, v in d.items())
    )
)
def test_fuzz_the_spec_decoder_refuses_with_its_id_or_decodes(text: str) -> None:
    try:
        parse_spec(loads_toml(text, max_bytes=1 << 20))
    except (ValueError, SpecError) as exc:
        # the decoder's own refusal (load_spec re-raises it as spec.toml.invalid) or a spec id
        assert (
            isinstance(exc, DocumentRefused)
            or not isinstance(exc, ChronosealError)
            or (exc.id.startswith("spec."))
        )
