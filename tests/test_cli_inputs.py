"""Specification of what ``sceau`` does with bad input: a clear line, nothing sent, nothing lost.

Every act input is checked before anything is signed or sent, with the deeds contract's own
validators and limits (contracts/deeds.py), plus what the contract accepts but no person means
(a title of only spaces, an act dated 0001-01-01). Errors are one line, ``sceau: error: …``,
exit status 2, never a traceback. A receipt is never lost: its path is checked before the
submission, and if writing it still fails after the commit it is saved elsewhere and the
message says where. The tests run the real command in a process, against a real devnet
where a node must answer, and against an unreachable address where nothing must be sent.
"""

from __future__ import annotations

import http.server
import json
import re
import ssl
import threading
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import write_self_signed_certificate
from test_cli import assert_ok, assert_user_error, free_port, sceau, sceau_all

from contracts import deeds
from ledger import crypto
from node.runtime.config import ConfigError, NodeConfig, load_config
from node.tools import cli, cli_chain
from node.tools.devnet import MemberProcess, devnet_down, devnet_up

ACT_DATE = "2026-11-28"
TX_ID = re.compile(r"(?<=transaction )[0-9a-f]{64}")
"""The transaction id in what ``sceau anchor`` prints (the line before is the digest)."""


def anchor_command(document: Path, api: str, key: str, **options: str) -> list[str | Path]:
    """``sceau anchor`` with sound values, each replaceable: ``title="…"`` gives ``--title …``
    (``issuer`` and ``reference`` have no sound default: give them)."""
    values = {
        "kind": "deliberation",
        "date": ACT_DATE,
        "title": "Plan local d'urbanisme, révision 3",
        **options,
    }
    command: list[str | Path] = ["anchor", document, "--api", api, "--key", key]
    for name, value in values.items():
        command += [f"--{name.replace('_', '-')}", value]
    return command


@pytest.fixture
def offline(tmp_path: Path) -> dict[str, str | Path]:
    """A document, a key and an address where no node listens: a command that reaches the
    network says ``unreachable``, so any other error proves that nothing was sent."""
    document = tmp_path / "acte.pdf"
    document.write_bytes(b"%PDF-1.7\n%%EOF\n")
    key = str(tmp_path / "key.pem")
    crypto.save_private_key(crypto.generate_key(), key)
    return {"document": document, "key": key, "api": f"http://127.0.0.1:{free_port()}"}


def offline_anchor(offline: dict[str, str | Path], **options: str) -> list[str | Path]:
    values = {"issuer": "ville", "reference": "R-1", **options}
    return anchor_command(offline["document"], str(offline["api"]), str(offline["key"]), **values)


def run_cases(cases: list[tuple[list[str | Path], tuple[str, ...]]]) -> None:
    """Run every command at once; each must fail with one line holding its fragments, and
    none may have reached the (unreachable) node. All failures are reported together."""
    failures = []
    for (command, fragments), result in zip(
        cases, sceau_all(*(command for command, _ in cases)), strict=True
    ):
        try:
            error = assert_user_error(result, *fragments)
            assert "unreachable" not in error, f"sent before it was checked: {error}"
            assert len(error) < 400, f"the error echoes the hostile value: {error[:200]}…"
        except AssertionError as failure:
            shown = " ".join(str(part)[:60] for part in command)
            failures.append(f"sceau {shown}:\n  {failure}")
    assert not failures, "\n".join(failures)


# --- act inputs, checked before anything is sent -----------------------------------------------


def test_every_bad_anchor_input_is_one_line_before_anything_is_sent(
    offline: dict[str, str | Path],
) -> None:
    huge = "x" * 100_000
    cases: list[tuple[list[str | Path], tuple[str, ...]]] = [
        (offline_anchor(offline, title=huge), ("--title", "100000")),
        (offline_anchor(offline, title="x" * (deeds.TITLE_CHARACTERS_MAX + 1)), ("--title",)),
        (offline_anchor(offline, title="   "), ("--title", "only spaces")),
        (offline_anchor(offline, title="tab\there"), ("--title", "control")),
        (offline_anchor(offline, title=""), ("--title",)),
        (offline_anchor(offline, reference=huge), ("--reference",)),
        (offline_anchor(offline, reference="../../etc"), ("--reference",)),
        (offline_anchor(offline, reference=""), ("--reference",)),
        (offline_anchor(offline, issuer="Ville de Valbrune"), ("--issuer", "member id")),
        (offline_anchor(offline, issuer=huge), ("--issuer",)),
        (offline_anchor(offline, legal_basis=huge), ("--legal-basis",)),
        (offline_anchor(offline, legal_basis=" "), ("--legal-basis", "only spaces")),
        (offline_anchor(offline, url="javascript:alert(1)"), ("--url",)),
        (offline_anchor(offline, url="https://" + huge), ("--url",)),
        (offline_anchor(offline, date="0001-01-01"), ("--date", "1800-01-01", "2199-12-31")),
        (offline_anchor(offline, date="2200-01-01"), ("--date", "2199-12-31")),
        (offline_anchor(offline, date="2026-02-29"), ("not a valid date (2026-02-29)",)),
        (offline_anchor(offline, date="2026-13-01"), ("not a valid date (2026-13-01)",)),
        (offline_anchor(offline, date="28/11/2026"), ("not a date written YYYY-MM-DD",)),
        (offline_anchor(offline, date=huge), ("not a date written YYYY-MM-DD",)),
        (offline_anchor(offline, kind="poem"), ("--kind",)),
        (offline_anchor(offline, wait="-1"), ("--wait",)),
        (offline_anchor(offline, wait="nan"), ("--wait",)),
        (offline_anchor(offline, wait="inf"), ("--wait",)),
        (offline_anchor(offline, wait="0"), ("--wait",)),
        ([*offline_anchor(offline), "--api", "localhost:8080"], ("give the URL with its scheme",)),
        (offline_anchor(offline, passphrase_file=str(offline["document"])), ()),
        ([*offline_anchor(offline), "--key", offline["document"]], ("acte.pdf",)),
    ]
    run_cases(cases)


def test_the_limits_are_the_contracts_own(offline: dict[str, str | Path]) -> None:
    """At the contract's limit the command goes on to the network (here: no node); one
    character more and it stops before — so the CLI's bound is the contract's."""
    at_limits = offline_anchor(
        offline,
        title="é" * deeds.TITLE_CHARACTERS_MAX,
        reference="R" * deeds.REFERENCE_CHARACTERS_MAX,
        legal_basis="L" * deeds.LEGAL_BASIS_CHARACTERS_MAX,
        url="https://x.fr/" + "u" * (deeds.URL_CHARACTERS_MAX - len("https://x.fr/")),
        date=cli.ACT_DATE_FIRST,
    )
    last_day = offline_anchor(offline, date=cli.ACT_DATE_LAST)
    for result in sceau_all(at_limits, last_day):
        assert_user_error(result, "unreachable")
    assert set(cli.ACT_KINDS) == deeds.KINDS
    help_text = assert_ok(sceau("anchor", "--help"))
    assert f"1 to {deeds.TITLE_CHARACTERS_MAX} characters" in " ".join(help_text.split())


def test_every_bad_status_change_and_lookup_is_one_line_before_anything_is_sent(
    offline: dict[str, str | Path],
) -> None:
    api, key = str(offline["api"]), str(offline["key"])
    change = ["act", "status", "ville", "R-1", "--api", api, "--key", key]
    cases: list[tuple[list[str | Path], tuple[str, ...]]] = [
        ([*change, "--withdraw", "   "], ("--withdraw", "only spaces")),
        ([*change, "--annul", "r" * (deeds.REASON_CHARACTERS_MAX + 1)], ("--annul",)),
        ([*change, "--withdraw", "x", "--decision-reference", "d" * 100_000], ("--decision",)),
        ([*change, "--amend-by", "not a reference"], ("--amend-by",)),
        ([*change, "--supersede-by", ""], ("--supersede-by",)),
        ([*change, "--withdraw", "x", "--annul", "y"], ("exactly one",)),
        ([*change, "--withdraw", "x", "--wait", "0"], ("--wait",)),
        ([*change, "--withdraw", "x", "--wait", "3601"], ("--wait",)),
        (["act", "status", "Ville", "R-1", "--withdraw", "x", "--api", api, "--key", key], ()),
        (["act", "show", "ville", "x" * 100_000, "--api", api], ("REFERENCE",)),
        (["act", "show", "VILLE", "R-1", "--api", api], ("ISSUER",)),
        (["act", "find", "--digest", "ab" * 31, "--api", api], ("--digest",)),
        (["act", "find", "--digest", "zz" * 32, "--api", api], ("--digest",)),
        (["status", "--api", "ftp://127.0.0.1:8700"], ("http://",)),
        (["status", "--api", "http://"], ("host",)),
        (["status", "--api", "http://127.0.0.1:notaport"], ("not a URL",)),
        (["status", "--api", "http://127.0.0.1:8700/?x=1"], ("query",)),
        (["status", "--api", ",".join(["http://127.0.0.1:1"] * 2 + [api] * 0) + ",,"], ()),
    ]
    # The last case is a valid list of one URL (duplicates merged): it reaches the network.
    *refused, (valid_list, _) = cases
    run_cases(refused)
    assert_user_error(sceau(*valid_list), "unreachable")
    many = ",".join(f"http://127.0.0.1:{port}" for port in range(1, 200))
    assert_user_error(sceau("status", "--api", many), "--api", "at most")


def test_a_missing_receipt_folder_or_an_existing_receipt_is_refused_before_submitting(
    offline: dict[str, str | Path], tmp_path: Path
) -> None:
    existing = tmp_path / "kept.json"
    existing.write_text("{}\n")
    run_cases(
        [
            (offline_anchor(offline, receipt="/nonexistent/dir/r.json"), ("/nonexistent/dir",)),
            (offline_anchor(offline, receipt=str(existing)), ("exists", "--force")),
            (offline_anchor(offline, receipt=str(tmp_path)), ("folder",)),
        ]
    )
    assert existing.read_text() == "{}\n"
    # With --force an existing receipt may be replaced: the command goes on to the network.
    forced = offline_anchor(offline, receipt=str(existing))
    assert_user_error(sceau(*forced, "--force"), "unreachable")


def test_export_batch_is_bounded_as_documented() -> None:
    from node.api.limits import BUNDLE_FRAMES_MAX

    assert cli_chain.EXPORT_BATCH_FRAMES_MAX == BUNDLE_FRAMES_MAX
    audit_doc = (Path(__file__).parents[1] / "docs" / "audit.md").read_text()
    assert f"at most {BUNDLE_FRAMES_MAX}" in audit_doc
    parser = cli.build_parser()
    api = ["--api", "http://127.0.0.1:8700"]
    assert parser.parse_args(["export", "b", *api, "--batch", "256"]).batch == 256
    for refused in ("100000", "257", "0", "-1", "many", "9" * 5000):
        assert_user_error(sceau("export", "b", *api, "--batch", refused), "--batch")
    assert "1 to 256" in " ".join(assert_ok(sceau("export", "--help")).split())


def test_export_checks_its_api_url_as_every_command_does() -> None:
    assert_user_error(
        sceau("export", "b", "--api", "localhost:8700"), "give the URL with its scheme"
    )
    assert_user_error(
        sceau("export", "b", "--api", "http://a:1,http://b:2"), "one URL here, not several"
    )


# --- the docs say what the code does ---------------------------------------------------------


def test_operations_doc_lists_the_log_levels_the_config_accepts(tmp_path: Path) -> None:
    accepted = typing.get_args(NodeConfig.model_fields["log_level"].annotation)
    operations = (Path(__file__).parents[1] / "docs" / "operations.md").read_text()
    row = next(line for line in operations.splitlines() if line.startswith("| `log_level` |"))
    named = set(re.findall(r"`([A-Za-z]+)`", row.split("|")[3]))
    assert {name.upper() for name in named if name in accepted} == {
        "DEBUG",
        "INFO",
        "WARNING",
        "ERROR",
    }
    assert {level.upper() for level in accepted} == {"DEBUG", "INFO", "WARNING", "ERROR"}
    for refused in named - set(accepted):  # the doc's examples of values refused
        config = tmp_path / f"{refused}.toml"
        config.write_text(
            'member_id = "ville"\ndata_dir = "d"\ngenesis_file = "g.json"\n'
            f'key_file = "k.pem"\nlog_level = "{refused}"\n'
        )
        with pytest.raises(ConfigError, match="log_level"):
            load_config(config)
    assert "traceback" not in row.lower()


# --- against real nodes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemberProcess]:
    """The first member of a running devnet of four."""
    directory = tmp_path_factory.mktemp("inputs")
    try:
        yield devnet_up(directory, 4)[0]
    finally:
        if (directory / "devnet.json").exists():
            devnet_down(directory)


def test_a_huge_title_against_a_real_node_is_one_line_and_nothing_is_anchored(
    member: MemberProcess, tmp_path: Path
) -> None:
    document = tmp_path / "huge.pdf"
    document.write_bytes(b"%PDF-1.7 huge\n%%EOF\n")
    command = anchor_command(
        document,
        member.api_url,
        member.key_file,
        issuer=member.member_id,
        reference="HUGE-1",
        title="x" * 100_000,
    )
    assert_user_error(sceau(*command), "--title")
    shown = sceau("act", "show", member.member_id, "HUGE-1", "--api", member.api_url)
    assert_user_error(shown, "unknown_act")


def test_a_rejection_names_the_transaction_its_code_and_its_detail(
    member: MemberProcess, tmp_path: Path
) -> None:
    document = tmp_path / "twice.pdf"
    document.write_bytes(b"%PDF-1.7 twice\n%%EOF\n")
    first = anchor_command(
        document, member.api_url, member.key_file, issuer=member.member_id, reference="TWICE-1"
    )
    assert "committed" in assert_ok(sceau(*first))
    again = [*first, "--receipt", tmp_path / "again.json"]
    result = sceau(*again)
    error = assert_user_error(result, "duplicate_reference", "TWICE-1", status=1)
    tx_id = TX_ID.search(result.stdout)
    assert tx_id is not None and f"transaction {tx_id.group()}: rejected" in result.stdout
    assert error.startswith(f"sceau: error: transaction {tx_id.group()} rejected:")
    assert len(error.splitlines()) == 1
    assert not (tmp_path / "again.json").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a full disk)")
def test_a_receipt_that_cannot_be_written_after_the_commit_is_saved_beside(
    member: MemberProcess, tmp_path: Path
) -> None:
    """/dev/full accepts the open and fails the write (ENOSPC): a disk full at the worst time.
    The act is committed; its receipt lands in the current folder, named by its transaction."""
    document = tmp_path / "full.pdf"
    document.write_bytes(b"%PDF-1.7 full\n%%EOF\n")
    command = anchor_command(
        document, member.api_url, member.key_file, issuer=member.member_id, reference="FULL-1"
    )
    result = sceau(*command, "--receipt", "/dev/full", "--force", cwd=tmp_path)
    assert result.returncode == cli.EXIT_RECEIPT_NOT_SAVED, result.stderr
    assert "Traceback" not in result.stderr
    tx_id = TX_ID.search(result.stdout).group()
    saved = tmp_path / f"{tx_id}.receipt.json"
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1
    for fragment in (tx_id, "committed", "/dev/full", str(saved), f"sceau receipt {tx_id}"):
        assert fragment in error, (fragment, error)
    receipt = json.loads(saved.read_text())
    genesis = Path(member.config_file).parents[1] / "genesis.json"
    verified = sceau("verify", saved, "--genesis", genesis, "--document", document)
    assert "VERIFIED" in assert_ok(verified)
    assert receipt["height"] >= 1


def test_the_peer_port_gives_a_readable_line(member: MemberProcess) -> None:
    peer = f"http://127.0.0.1:{member.peer_port}"
    error = assert_user_error(sceau("status", "--api", peer), "404", "peer port")
    assert "<html" not in error.lower()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """An HTTPS server with a self-signed certificate, on loopback: its port and certificate.

    It answers every request 501 (it is no sceau API): once its certificate is trusted, the
    CLI says so, which shows the CA was used."""
    certificate, key = write_self_signed_certificate(
        tmp_path_factory.mktemp("tls"), host="localhost", ca=False, strict=False
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *arguments: object) -> None:
            pass

    class TlsServer(http.server.ThreadingHTTPServer):
        def get_request(self):  # type: ignore[no-untyped-def]
            connection, address = super().get_request()
            return context.wrap_socket(connection, server_side=True), address

        def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
            pass  # a plain-HTTP client fails the handshake: expected here

    server = TlsServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], certificate
    finally:
        server.shutdown()
        server.server_close()


def test_an_https_server_asked_over_http_or_untrusted_gives_a_readable_line(
    tls_server: tuple[int, Path],
) -> None:
    port, certificate = tls_server
    over_http, untrusted, trusted = sceau_all(
        ["status", "--api", f"http://127.0.0.1:{port}"],
        ["status", "--api", f"https://localhost:{port}"],
        ["status", "--api", f"https://localhost:{port}", "--ca-file", str(certificate)],
    )
    error = assert_user_error(over_http, "tls_mismatch", "https://")
    assert f"127.0.0.1:{port}" in error
    error = assert_user_error(untrusted, "untrusted_certificate", f"localhost:{port}")
    assert "--ca-file" in error and "ca_file=" not in error
    # Trusted, the server is reached: its (non-sceau) HTML answer is cut to one line.
    error = assert_user_error(trusted, "501")
    assert "certificate" not in error and len(error) < 400


def test_a_ca_file_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    (result,) = sceau_all(
        ["status", "--api", "https://localhost:1", "--ca-file", str(tmp_path / "none.pem")]
    )
    assert_user_error(result, "--ca-file", "none.pem")


def test_operations_doc_states_the_clis_own_bounds_and_exit_statuses() -> None:
    operations = " ".join(
        (Path(__file__).parents[1] / "docs" / "operations.md").read_text().split()
    )
    assert f"between **{cli.ACT_DATE_FIRST} and {cli.ACT_DATE_LAST}**" in operations
    assert f"a title of 1 to {deeds.TITLE_CHARACTERS_MAX} characters" in operations
    assert f"at most {cli.WAIT_S_MAX:g} seconds" in operations
    assert f"| {cli.EXIT_RECEIPT_NOT_SAVED} | `anchor`: the act is committed" in operations
