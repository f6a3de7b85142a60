"""The ``sceau`` command line, run as a user runs it: separate processes, real files, real nodes.

A collectivity's IT department generates keys, writes a genesis and initialises its node; a
developer starts a devnet, anchors a document and looks it up by its digest, changes an act's
status and stops the devnet. Each command runs as ``python -m node.tools.cli`` in its own process;
the checks are on what a person sees: the exit status, stdout, stderr and the files written.

The conventions every command keeps (node/tools/cli.py): 0 on success, 1 when a check fails (a
document that no act anchors, a transaction the consortium refused), 2 for an error the user
can fix, printed as one line ``sceau: error: ...`` on stderr, never a Python traceback.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import io
import json
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from ledger import crypto
from ledger.model import Genesis
from node.tools.cli import build_parser
from node.tools.devnet import devnet_down, read_devnet

SCEAU = [sys.executable, "-m", "node.tools.cli"]
COMMAND_TIMEOUT_S = 60.0
CONCURRENT_COMMANDS = 4
PUBLIC_KEY_TEXT = re.compile(r"ed25519:[A-Za-z0-9_-]{43}")
TOP_LEVEL_COMMANDS = ("key", "genesis", "node", "devnet", "status", "anchor", "act", "hash")
MEMBERS = (
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger-les-vignes", "Commune de Saint-Léger-les-Vignes"),
    ("syndicat-eaux-valbrunois", "Syndicat des eaux du Valbrunois"),
)


def sceau(
    *arguments: str | Path, cwd: Path | None = None, timeout_s: float = COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run ``sceau ARGUMENTS`` in a new process and return what it did."""
    return subprocess.run(
        [*SCEAU, *(str(argument) for argument in arguments)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )


def sceau_all(*commands: list[str | Path]) -> list[subprocess.CompletedProcess[str]]:
    """Run several independent ``sceau`` commands, a few at a time (each in its own process).

    At most ``CONCURRENT_COMMANDS`` run at once, so that each command's timeout measures that
    command, not how many others share the machine's cores with it."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENT_COMMANDS) as pool:
        return list(pool.map(lambda command: sceau(*command), commands))


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def assert_user_error(
    result: subprocess.CompletedProcess[str], *fragments: str, status: int = 2
) -> str:
    """An error a person can act on: the exit status, one line on stderr, no traceback."""
    assert result.returncode == status, (
        f"expected exit {status}, got {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    assert "Traceback" not in result.stderr, result.stderr
    error = result.stderr.strip()
    assert error, "the error is not explained on stderr"
    if status == 2:
        assert len(error.splitlines()) == 1, f"not a one-line error:\n{error}"
        assert error.startswith("sceau: error:"), error
    for fragment in fragments:
        assert fragment in error, f"{fragment!r} not in {error!r}"
    return error


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_running(pid: int) -> bool:
    """True if ``pid`` is a live process (a zombie awaiting its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def json_documents(text: str) -> list[Any]:
    """The JSON documents printed one after the other (``act show --history`` prints two)."""
    decoder = json.JSONDecoder()
    documents, position = [], 0
    text = text.strip()
    while position < len(text):
        document, end = decoder.raw_decode(text, position)
        documents.append(document)
        position = end
        while position < len(text) and text[position].isspace():
            position += 1
    return documents


def command_paths() -> list[tuple[str, ...]]:
    """Every command and sub-command of the parser, walked from the top."""
    paths: list[tuple[str, ...]] = []

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> None:
        for action in parser._actions:  # argparse offers no public way to list sub-commands
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    paths.append((*prefix, name))
                    walk(child, (*prefix, name))

    walk(build_parser(), ())
    return paths


# --- help ------------------------------------------------------------------------------------


def help_in_process(*path: str) -> tuple[str, int]:
    """What ``sceau PATH --help`` prints, and its exit status, from :func:`build_parser`."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            build_parser().parse_args([*path, "--help"])
        except SystemExit as exit_:
            return printed.getvalue(), int(exit_.code or 0)
    return printed.getvalue(), 0


def test_help_lists_the_commands_and_every_command_has_help() -> None:
    top = assert_ok(sceau("--help"))
    for command in TOP_LEVEL_COMMANDS:
        assert re.search(rf"^\s+{command}\s", top, re.MULTILINE), f"{command} not in --help"

    paths = command_paths()
    assert {path[0] for path in paths} >= set(TOP_LEVEL_COMMANDS)
    assert ("act", "find") in paths and ("genesis", "add-member") in paths
    # Every command's help comes from the same parser the installed `sceau` builds: asked in
    # this process (one process per command cost half a minute of CI for the same text), and
    # for two commands through the real executable too, so that both are seen to agree.
    for path in paths:
        shown = " ".join(path)
        printed, status = help_in_process(*path)
        assert status == 0, f"sceau {shown} --help: exit {status}"
        assert printed.startswith(f"usage: sceau {shown}"), printed[:200]
    spawned = [("act", "find"), ("genesis", "add-member")]
    *helps, version, nothing = sceau_all(
        *([*path, "--help"] for path in spawned), ["--version"], []
    )
    for path, result in zip(spawned, helps, strict=True):
        assert assert_ok(result).startswith(f"usage: sceau {' '.join(path)}"), result.stdout[:200]
    assert assert_ok(version).startswith("sceau ")
    assert nothing.returncode == 2 and "usage: sceau" in nothing.stderr
    assert "Traceback" not in nothing.stderr


# --- keys ------------------------------------------------------------------------------------


def test_key_generate_writes_a_private_pem_and_show_prints_its_public_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "node.pem"
    path.parent.mkdir()
    public = assert_ok(sceau("key", "generate", path)).strip()
    assert PUBLIC_KEY_TEXT.fullmatch(public), public
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert assert_ok(sceau("key", "show", path)).strip() == public

    # Never overwrite a key by accident: a lost node key is a lost membership.
    pem = path.read_bytes()
    assert_user_error(sceau("key", "generate", path), str(path), "exists")
    assert path.read_bytes() == pem
    replaced = assert_ok(sceau("key", "generate", path, "--force")).strip()
    assert PUBLIC_KEY_TEXT.fullmatch(replaced) and replaced != public
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    # Encrypted keys: the passphrase is needed to show them.
    passphrase = tmp_path / "pass.txt"
    passphrase.write_text("correct horse battery staple\n")
    encrypted = tmp_path / "encrypted.pem"
    locked = assert_ok(sceau("key", "generate", encrypted, "--passphrase-file", passphrase)).strip()
    assert assert_ok(sceau("key", "show", encrypted, "--passphrase-file", passphrase)).strip() == (
        locked
    )
    assert_user_error(sceau("key", "show", encrypted))

    assert_user_error(sceau("key", "show", tmp_path / "missing.pem"), "missing.pem")
    (tmp_path / "not-a-key.pem").write_text("hello\n")
    assert_user_error(sceau("key", "show", tmp_path / "not-a-key.pem"), "not-a-key.pem")


# --- genesis ---------------------------------------------------------------------------------


def write_keys(directory: Path) -> dict[str, str]:
    """A node key per member (written as ``sceau key generate`` does); their public keys."""
    public_keys = {}
    for member_id, _ in MEMBERS:
        key = crypto.generate_key()
        crypto.save_private_key(key, directory / f"{member_id}.pem")
        public_keys[member_id] = crypto.public_key_to_text(crypto.public_key_bytes(key))
    return public_keys


def create_genesis(directory: Path, public_keys: dict[str, str]) -> subprocess.CompletedProcess:
    arguments: list[str | Path] = ["genesis", "create", "--consortium", "Consortium du Valbrunois"]
    for index, (member_id, name) in enumerate(MEMBERS):
        endpoint = f"127.0.0.1:{7400 + index}"
        arguments += ["--member", f"{member_id},{name},{public_keys[member_id]},{endpoint}"]
    return sceau(*arguments, "--out", directory / "genesis.json")


def test_genesis_create_add_member_and_show(tmp_path: Path) -> None:
    public_keys = write_keys(tmp_path)
    created = assert_ok(create_genesis(tmp_path, public_keys))
    genesis_file = tmp_path / "genesis.json"
    first = Genesis.model_validate_json(genesis_file.read_text())
    assert [member.id for member in first.members] == [member_id for member_id, _ in MEMBERS]
    assert "4 members" in created and first.chain_id.hex() in created
    assert first.format_version == 2 and "header format 2" in created

    newcomer_key = crypto.public_key_to_text(crypto.public_key_bytes(crypto.generate_key()))
    added = assert_ok(
        sceau(
            "genesis",
            "add-member",
            genesis_file,
            "--id",
            "montclar-sur-loue",
            "--name",
            "Commune de Montclar-sur-Loue",
            "--public-key",
            newcomer_key,
            "--endpoint",
            "127.0.0.1:7404",
        )
    )
    genesis = Genesis.model_validate_json(genesis_file.read_text())
    assert len(genesis.members) == 5 and genesis.chain_id != first.chain_id
    assert "5 members" in added and genesis.chain_id.hex() in added

    shown = assert_ok(sceau("genesis", "show", genesis_file))
    assert re.search(rf"chain_id:\s+{genesis.chain_id.hex()}", shown), shown
    assert "tolerates 1 faulty" in shown
    for member in genesis.members:
        assert member.id in shown

    # Mistakes a person makes, each answered in one line.
    assert_user_error(create_genesis(tmp_path, public_keys), "exists", "--force")
    assert_user_error(
        sceau("genesis", "create", "--consortium", "C", "--member", "ville,Ville,only-three"),
        "ID,NAME,PUBLIC_KEY,HOST:PORT",
    )
    assert_user_error(
        sceau(
            "genesis",
            "create",
            "--consortium",
            "C",
            "--member",
            "ville,Ville,ed25519:not-a-key,127.0.0.1:7400",
            "--out",
            tmp_path / "bad.json",
        ),
        "invalid genesis",
    )
    duplicate = sceau(
        "genesis",
        "add-member",
        genesis_file,
        "--id",
        "ville-valbrune",
        "--name",
        "Encore",
        "--public-key",
        crypto.public_key_to_text(crypto.public_key_bytes(crypto.generate_key())),
        "--endpoint",
        "127.0.0.1:7405",
    )
    assert_user_error(duplicate, "ville-valbrune")
    assert Genesis.model_validate_json(genesis_file.read_text()) == genesis
    assert_user_error(sceau("genesis", "show", tmp_path / "missing.json"), "missing.json")


# --- node ------------------------------------------------------------------------------------


def write_node_config(directory: Path, member_id: str, key_file: str, data_dir: str) -> Path:
    config = directory / f"{data_dir}.toml"
    config.write_text(
        f'member_id = "{member_id}"\n'
        f'data_dir = "{data_dir}"\n'
        'genesis_file = "genesis.json"\n'
        f'key_file = "{key_file}"\n'
        f'peer_listen = "127.0.0.1:{free_port()}"\n'
        f'api_listen = "127.0.0.1:{free_port()}"\n'
    )
    return config


def test_node_init_creates_the_chain_once_and_node_run_refuses_a_wrong_key(
    tmp_path: Path,
) -> None:
    public_keys = write_keys(tmp_path)
    assert_ok(create_genesis(tmp_path, public_keys))
    chain_id = Genesis.model_validate_json((tmp_path / "genesis.json").read_text()).chain_id
    config = write_node_config(tmp_path, "ville-valbrune", "ville-valbrune.pem", "data")

    initialised = assert_ok(sceau("node", "init", "--config", config))
    assert chain_id.hex() in initialised
    assert (tmp_path / "data" / "chain").is_dir()
    assert_user_error(sceau("node", "init", "--config", config), str(tmp_path / "data" / "chain"))

    # Started with another member's key: it must say so and stop, not hang or serve.
    wrong_key = write_node_config(tmp_path, "ville-valbrune", "metropole-valbrune.pem", "data")
    refused = sceau("node", "run", "--config", wrong_key, timeout_s=30)
    assert_user_error(refused, "metropole-valbrune.pem", "ville-valbrune")

    stranger = write_node_config(tmp_path, "commune-inconnue", "ville-valbrune.pem", "data")
    assert_user_error(sceau("node", "run", "--config", stranger, timeout_s=30), "commune-inconnue")

    uninitialised = write_node_config(tmp_path, "ville-valbrune", "ville-valbrune.pem", "fresh")
    assert_user_error(
        sceau("node", "run", "--config", uninitialised, timeout_s=30), "sceau node init"
    )
    assert_user_error(sceau("node", "init", "--config", tmp_path / "none.toml"), "none.toml")
    (tmp_path / "typo.toml").write_text('member_id = "ville-valbrune"\ndata_dir = 12\n')
    assert_user_error(sceau("node", "init", "--config", tmp_path / "typo.toml"), "typo.toml")


# --- a developer's session on a devnet -------------------------------------------------------


def anchor_arguments(document: Path, api: str, key: str, issuer: str, reference: str) -> list:
    return [
        "anchor",
        document,
        "--api",
        api,
        "--key",
        key,
        "--issuer",
        issuer,
        "--reference",
        reference,
        "--kind",
        "deliberation",
        "--date",
        "2026-11-28",
        "--title",
        "Plan local d'urbanisme, révision 3",
    ]


def test_devnet_session_anchor_find_show_withdraw_and_down(tmp_path: Path) -> None:
    directory = tmp_path / "valbrune"
    document = tmp_path / "deliberation-2026-042.pdf"
    document.write_bytes(b"%PDF-1.7\n1 0 obj << /Title (PLU revision 3) >> endobj\n%%EOF\n")
    digest = hashlib.sha256(document.read_bytes()).hexdigest()
    try:
        started = assert_ok(sceau("devnet", "up", "--nodes", "4", "--dir", directory))
        members = read_devnet(directory)
        assert len(members) == 4
        assert all(process_running(member.pid) for member in members)
        issuer = members[0]
        assert issuer.api_url in started and f"--key {issuer.key_file}" in started
        api, key = issuer.api_url, issuer.key_file
        genesis = Genesis.model_validate_json((directory / "genesis.json").read_text())

        assert assert_ok(sceau("hash", document)).strip() == digest

        anchored = assert_ok(
            sceau(*anchor_arguments(document, api, key, issuer.member_id, "2026-DEL-042"))
        )
        assert f"sha256 {digest}" in anchored and "committed" in anchored
        height = int(re.search(r"committed at height ([0-9]+)", anchored).group(1))
        receipt_file = Path(f"{document}.receipt.json")
        assert receipt_file.is_file() and str(receipt_file) in anchored
        receipt = json.loads(receipt_file.read_text())
        assert receipt["chain_id"] == genesis.chain_id.hex() and receipt["height"] == height

        # What a citizen does with a copy: look it up by its digest, on any node.
        altered = tmp_path / "altered.pdf"
        altered.write_bytes(document.read_bytes() + b" ")
        found, by_digest, not_found, status_answer = sceau_all(
            ["act", "find", "--file", document, "--api", api],
            ["act", "find", "--digest", digest, "--api", members[3].api_url],
            ["act", "find", "--file", altered, "--api", api],
            ["status", "--api", members[2].api_url],
        )
        assert f"{issuer.member_id}/2026-DEL-042" in assert_ok(found)
        assert "in_force" in found.stdout and digest in found.stdout
        assert f"{issuer.member_id}/2026-DEL-042" in assert_ok(by_digest)
        assert not_found.returncode == 1, (not_found.stdout, not_found.stderr)
        assert "no act" in not_found.stdout and "Traceback" not in not_found.stderr
        status = json.loads(assert_ok(status_answer))
        assert status["height"] >= height and status["chain_id"] == genesis.chain_id.hex()

        withdrawn = assert_ok(
            sceau(
                "act",
                "status",
                issuer.member_id,
                "2026-DEL-042",
                "--withdraw",
                "Erreur matérielle dans le règlement",
                "--api",
                api,
                "--key",
                key,
            )
        )
        assert "committed" in withdrawn
        shown = assert_ok(
            sceau("act", "show", issuer.member_id, "2026-DEL-042", "--history", "--api", api)
        )
        act, history = json_documents(shown)
        assert act["status"] == "withdrawn" and act["digest"] == digest
        assert [entry["status"] for entry in history] == ["in_force", "withdrawn"]

        # Errors a person makes against a running devnet: one line each, no traceback. And
        # the same reference anchored again, which the consortium refuses: checked after the
        # devnet is down, so that a failure there does not hide the rest of the session.
        bad_date = anchor_arguments(document, api, key, issuer.member_id, "2026-DEL-043")
        bad_date[bad_date.index("--date") + 1] = "28/11/2026"
        unknown = ["act", "show", issuer.member_id, "2026-DEL-999", "--api", api]
        no_change = ["act", "status", issuer.member_id, "2026-DEL-042", "--api", api, "--key", key]
        duplicate = anchor_arguments(document, api, key, issuer.member_id, "2026-DEL-042")
        duplicate += ["--receipt", tmp_path / "again.receipt.json"]  # the first one is kept
        *errors, again = sceau_all(bad_date, unknown, no_change, duplicate)
        for result, fragment in zip(errors, ("date", "unknown_act", "--withdraw"), strict=True):
            assert_user_error(result, fragment)

        stopped = assert_ok(sceau("devnet", "down", "--dir", directory))
        assert "stopped 4 members" in stopped
        assert not any(process_running(member.pid) for member in members)
        assert not (directory / "devnet.json").exists()
        assert_user_error(sceau("devnet", "down", "--dir", directory), "devnet.json")

        # A refused transaction is reported like the refusal it is (exit 1, with the
        # rejection's code: what command_anchor does for a "rejected" outcome), no traceback.
        assert_user_error(again, "duplicate_reference", status=1)
    finally:
        if (directory / "devnet.json").exists():
            devnet_down(directory)


def test_errors_never_print_a_traceback(tmp_path: Path) -> None:
    document = tmp_path / "acte.pdf"
    document.write_bytes(b"%PDF-1.7\n%%EOF\n")
    key = str(tmp_path / "key.pem")
    crypto.save_private_key(crypto.generate_key(), key)
    unreachable = f"http://127.0.0.1:{free_port()}"
    absent = tmp_path / "absent.pdf"
    cases: list[tuple[list[str | Path], tuple[str, ...]]] = [
        (["status", "--api", unreachable], ("unreachable",)),
        (["act", "find", "--file", document, "--api", unreachable], ("unreachable",)),
        (anchor_arguments(document, unreachable, key, "ville-valbrune", "R-1"), ("unreachable",)),
        (
            anchor_arguments(document, unreachable, str(tmp_path / "nokey.pem"), "ville", "R-1"),
            ("nokey.pem",),
        ),
        (anchor_arguments(absent, unreachable, key, "ville", "R-1"), ("absent.pdf",)),
        (["act", "find", "--digest", "not-hex", "--api", unreachable], ("--digest",)),
        (["hash", absent], ("absent.pdf",)),
        (["devnet", "up", "--nodes", "2", "--dir", tmp_path / "small"], ("4",)),
        (["devnet", "down", "--dir", tmp_path / "nowhere"], ("devnet.json",)),
        (["status", "--api", "not a url"], ()),
    ]
    results = sceau_all(*(command for command, _ in cases))
    failures = []  # every case is checked, so that one failure does not hide the others
    for (command, fragments), result in zip(cases, results, strict=True):
        try:
            error = assert_user_error(result, *fragments)
            if "unreachable" in fragments and ("answered" in error or unreachable not in error):
                # No node answered: the message must name the address and not say one did.
                raise AssertionError(f"misleading: {error}")
        except AssertionError as failure:
            failures.append(f"sceau {' '.join(map(str, command))}:\n  {failure}")
    assert not failures, "\n".join(failures)
    usage = sceau("anchor", document, "--kind", "poem")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_a_node_that_dies_at_start_up_is_reported_with_the_end_of_its_log(tmp_path: Path) -> None:
    """The demo removes its folder on the way out: the error itself carries the log's end."""
    from node.tools.devnet import DevnetError, MemberProcess, wait_ready

    log = tmp_path / "node.log"
    log.write_text(
        "".join(f"line {number}\n" for number in range(20)) + "sceau: error: port taken\n"
    )
    process = MemberProcess(
        member_id="ville-valbrune",
        name="Ville de Valbrune",
        pid=2**22 + 1,  # above Linux's largest pid_max (2**22): no such process
        api_url="http://127.0.0.1:9",
        peer_port=9,
        config_file=str(tmp_path / "node.toml"),
        key_file=str(tmp_path / "node.pem"),
        log_file=str(log),
    )
    try:
        wait_ready([process], timeout_s=5)
    except DevnetError as error:
        message = str(error)
    else:
        raise AssertionError("a dead process was reported ready")
    assert "ville-valbrune exited during start-up" in message
    assert message.endswith("  | sceau: error: port taken")
    assert "line 13" in message and "line 12" not in message  # the last 8 lines only
