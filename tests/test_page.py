"""The verification page in a real browser (headless Chromium) against a live devnet.

One devnet for the module: four members, an observer and one issuer admitted by governance,
real processes and sockets, set up before the browser (each test names ``devnet`` first:
Playwright's loop, once running, would stop the devnet's synchronous clients). Four real
documents are anchored: a deliberation signed by a member's node key, a building permit signed
by the issuer's own key, and a deliberation later amended by a third.
Each test drives the page as a resident would (the file input, the language switch, a link,
the keyboard), waits for the outcome the page writes in its aria-live result area, and saves a
screenshot in build/screenshots/page-<name>.png.

A tampered receipt is served the way a hostile node would serve it (Playwright intercepts the
receipt request and alters one field of the node's real answer); the page must refuse it and
name the same check Python's ``verify_receipt`` names for the same bytes. Every test also
checks that no request left the page's origin.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contracts.registry import receipt_anchors
from ledger import crypto
from ledger.client import Client
from ledger.logcheck import WitnessPolicy
from ledger.model import Genesis, sha256
from ledger.note import KeyType, NoteVerifierKey
from ledger.receipt import Receipt, ReceiptError, verify_receipt
from node.tools.cli import main
from node.tools.devnet import devnet_down, devnet_up, read_observers
from node.tools.territory import read_issuers
from tests.browser import browser, screenshot

__all__ = ["browser"]  # the fixture, used by name

OUTCOME_TIMEOUT_MS = 20_000
CATCH_UP_S = 20.0
MEMBER_REFERENCE = "2026-DEL-042"
AMENDED_REFERENCE = "2026-DEL-043"
AMENDING_REFERENCE = "2026-DEL-051"
PERMIT_REFERENCE = "PC-2026-0017"


@dataclass(frozen=True)
class Devnet:
    """The module's devnet: where its first member answers, its genesis, the documents."""

    api_url: str
    observer_url: str
    """An observer's API: it serves the page too, from the copy of the chain it verified."""
    folder: Path
    genesis_file: Path
    documents: dict[str, Path]
    tx_ids: dict[str, str]
    permit_receipt: Path
    """The permit's receipt with its status, as ``sceau receipt --with-status --out`` saves it."""
    member_name: str
    issuer_name: str


def sceau_here(*arguments: str) -> tuple[int, str, str]:
    """``sceau`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(arguments))
    return status, out.getvalue(), err.getvalue()


def _anchor(client: Client, folder: Path, issuer: str, reference: str, **fields: Any) -> Any:
    path = folder / f"{reference}.pdf"
    path.write_bytes(b"%PDF-1.7\n" + f"{issuer} {reference} {fields['title']}\n".encode() * 40)
    answer = client.anchor_file(path, issuer=issuer, reference=reference, wait_s=10, **fields)
    assert answer["status"] == "committed", answer
    return path, answer["tx_id"]


def _height(api_url: str) -> int:
    with urllib.request.urlopen(f"{api_url}/v1/status", timeout=5) as answer:
        return int(json.load(answer)["height"])


def _wait_until_caught_up(observer_url: str, member_url: str) -> None:
    tip = _height(member_url)
    deadline = time.monotonic() + CATCH_UP_S
    while _height(observer_url) < tip:
        assert time.monotonic() < deadline, f"the observer is not at height {tip} in time"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    base = tmp_path_factory.mktemp("page")
    folder, documents_folder = base / "devnet", base / "documents"
    documents_folder.mkdir()
    members = devnet_up(folder, 4, issuers=1, observers=1)
    try:
        member = members[0]
        (issuer,) = read_issuers(folder)
        documents: dict[str, Path] = {}
        tx_ids: dict[str, str] = {}
        with Client(member.api_url, signer=crypto.load_private_key(member.key_file)) as client:
            for reference, title in (
                (MEMBER_REFERENCE, "Plan local d'urbanisme, révision 3"),
                (AMENDED_REFERENCE, "Tarifs de la cantine scolaire"),
                (AMENDING_REFERENCE, "Tarifs de la cantine scolaire, modification"),
            ):
                documents[reference], tx_ids[reference] = _anchor(
                    client,
                    documents_folder,
                    member.member_id,
                    reference,
                    kind="deliberation",
                    act_date="2026-11-28",
                    title=title,
                )
            amended = client.amend(member.member_id, AMENDED_REFERENCE, by=AMENDING_REFERENCE)
            assert amended["status"] == "committed", amended
        issuer_key = crypto.load_private_key(folder / issuer["key_file"])
        with Client(member.api_url, signer=issuer_key) as client:
            documents[PERMIT_REFERENCE], tx_ids[PERMIT_REFERENCE] = _anchor(
                client,
                documents_folder,
                issuer["id"],
                PERMIT_REFERENCE,
                kind="permit",
                act_date="2026-10-02",
                title="Permis de construire, 3 rue des Lilas",
            )
        permit_receipt = base / f"{PERMIT_REFERENCE}.receipt.json"
        status, _, errors = sceau_here(
            "receipt", tx_ids[PERMIT_REFERENCE], "--with-status", "--api", member.api_url,
            "--out", str(permit_receipt),
        )  # fmt: skip
        assert status == 0, errors
        (observer,) = read_observers(folder)
        _wait_until_caught_up(observer.api_url, member.api_url)
        yield Devnet(
            api_url=member.api_url,
            observer_url=observer.api_url,
            folder=base,
            genesis_file=folder / "genesis.json",
            documents=documents,
            tx_ids=tx_ids,
            permit_receipt=permit_receipt,
            member_name=member.name,
            issuer_name=issuer["name"],
        )
    finally:
        devnet_down(folder)


@contextlib.contextmanager
def opened(browser: Any, url: str, *, locale: str = "fr-FR") -> Iterator[Any]:
    """A new page at ``url``; on leaving, checks that the page made no request elsewhere than
    its origin (or, for a file, none at all) and raised no script error."""
    context = browser.new_context(locale=locale)
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(url)
        yield page
        origin = url.split("/", 3)[:3]
        for address in requests:
            if url.startswith("file:"):
                assert address.startswith("file:"), address
            else:
                assert address.split("/", 3)[:3] == origin, address
        assert not errors, errors
    finally:
        context.close()


def outcome(page: Any, kind: str) -> Any:
    """The result area's outcome of ``kind`` (verified, refused, absent…), once it is there."""
    selector = f'#result article[data-outcome="{kind}"]'
    page.wait_for_selector(selector, timeout=OUTCOME_TIMEOUT_MS)
    return page.locator(selector)


def drop(page: Any, *paths: Path) -> None:
    """Drop ``paths`` together on the page's drop zone, as a reader drags them from a folder."""
    files = [
        {"name": path.name, "data": base64.b64encode(path.read_bytes()).decode()} for path in paths
    ]
    transfer = page.evaluate_handle(
        """files => {
            const transfer = new DataTransfer();
            for (const file of files) {
                const bytes = Uint8Array.from(atob(file.data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], file.name));
            }
            return transfer;
        }""",
        files,
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})


def checked_steps(article: Any) -> list[str]:
    return [
        item.get_attribute("data-step") for item in article.locator(".checks li[data-step]").all()
    ]


def python_refusal(
    receipt: dict[str, Any],
    genesis_file: Path,
    document: bytes | None,
    witnesses: WitnessPolicy | None = None,
) -> str:
    """The step Python's verifier names when it refuses ``receipt`` (the receipt's JSON)."""
    genesis = Genesis.model_validate_json(genesis_file.read_text())
    parsed = Receipt.model_validate_json(json.dumps(receipt))
    with pytest.raises(ReceiptError) as refused:
        verify_receipt(parsed, genesis, document, anchors=receipt_anchors(), witnesses=witnesses)
    return refused.value.step


def test_a_genuine_document_is_verified_in_french(devnet: Devnet, browser: Any) -> None:
    with opened(browser, f"{devnet.api_url}/") as page:
        assert page.get_attribute("html", "lang") == "fr"
        page.set_input_files("#document-input", devnet.documents[MEMBER_REFERENCE])
        verified = outcome(page, "verified")
        text = verified.inner_text()
        assert "Document authentique" in text
        assert devnet.member_name in text and MEMBER_REFERENCE in text
        assert "Plan local d'urbanisme, révision 3" in text and "Délibération" in text
        assert "28 novembre 2026" in text and "En vigueur" in text
        assert verified.get_attribute("data-status") == "in_force"
        steps = checked_steps(verified)
        for step in ("chain", "transaction", "block", "inclusion", "signer", "document"):
            assert step in steps, steps
        assert "status" in steps and "checkpoint" in steps
        assert "Vérifié dans votre propre navigateur" in text
        screenshot(page, "page-verified-fr")


def test_the_same_in_english_from_an_observer_after_switching_language(
    devnet: Devnet, browser: Any
) -> None:
    with opened(browser, f"{devnet.observer_url}/", locale="en-GB") as page:
        assert page.get_attribute("html", "lang") == "en"
        page.get_by_role("button", name="Français").click()
        assert page.get_attribute("html", "lang") == "fr"
        page.set_input_files("#document-input", devnet.documents[PERMIT_REFERENCE])
        outcome(page, "verified")
        page.get_by_role("button", name="English").click()
        assert page.get_attribute("html", "lang") == "en"
        text = outcome(page, "verified").inner_text()
        assert "Authentic document, recorded in the register" in text
        assert devnet.issuer_name in text and PERMIT_REFERENCE in text
        assert "Permit or authorisation" in text and "2 October 2026" in text
        assert "the authority's key, admitted by the consortium" in text
        assert "Checked in your own browser" in text
        screenshot(page, "page-verified-en")


def test_a_document_modified_by_one_byte_is_not_found(
    devnet: Devnet, browser: Any, tmp_path: Path
) -> None:
    modified = tmp_path / "deliberation.pdf"
    data = bytearray(devnet.documents[MEMBER_REFERENCE].read_bytes())
    data[-2] ^= 0x01
    modified.write_bytes(bytes(data))
    with opened(browser, f"{devnet.api_url}/") as page:
        page.set_input_files("#document-input", modified)
        absent = outcome(page, "absent")
        text = absent.inner_text()
        assert "Ce document n'est pas dans le registre" in text
        assert hashlib.sha256(bytes(data)).hexdigest() in text
        assert page.locator('#result article[data-outcome="verified"]').count() == 0
        assert page.locator('#result article[data-outcome="refused"]').count() == 0
        screenshot(page, "page-not-found")


def test_a_receipt_a_hostile_node_altered_is_refused_naming_the_check(
    devnet: Devnet, browser: Any
) -> None:
    served: list[dict[str, Any]] = []

    def alter(route: Any) -> None:
        response = route.fetch()
        answer = response.json()
        answer["receipt"]["header"]["timestamp_ms"] += 1
        served.append(answer["receipt"])
        route.fulfill(response=response, json=answer)

    document = devnet.documents[MEMBER_REFERENCE]
    with opened(browser, f"{devnet.api_url}/") as page:
        page.route("**/v1/transactions/*", alter)
        page.set_input_files("#document-input", document)
        refused = outcome(page, "refused")
        step = python_refusal(served[0], devnet.genesis_file, document.read_bytes())
        assert refused.get_attribute("data-step") == step
        text = refused.inner_text()
        assert "Preuve refusée" in text and "a échoué" in text
        assert "Document authentique" not in page.inner_text("#result")
        screenshot(page, "page-refused-hostile-node")


def _offline_page(devnet: Devnet, folder: Path, *options: str) -> Path:
    out = folder / "verifier.html"
    status, printed, errors = sceau_here(
        "page", "--out", str(out), "--genesis", str(devnet.genesis_file), *options
    )
    assert status == 0, errors
    assert "for use offline" in printed
    return out


def test_the_offline_file_verifies_a_document_and_its_receipt_file_from_disk(
    devnet: Devnet, browser: Any, tmp_path: Path
) -> None:
    verifier = _offline_page(devnet, tmp_path)
    receipt = devnet.permit_receipt
    with opened(browser, verifier.as_uri()) as page:
        assert page.locator("#offline").get_attribute("open") is not None
        drop(page, devnet.documents[PERMIT_REFERENCE], receipt)
        verified = outcome(page, "verified")
        chosen = page.inner_text("#chosen")
        assert f"{PERMIT_REFERENCE}.pdf" in chosen and receipt.name in chosen
        text = verified.inner_text()
        assert devnet.issuer_name in text and PERMIT_REFERENCE in text
        assert "signer" in checked_steps(verified)
        screenshot(page, "page-offline-verified")


def test_a_file_written_without_genesis_takes_the_genesis_file_from_the_reader(
    devnet: Devnet, browser: Any, tmp_path: Path
) -> None:
    verifier = tmp_path / "verifier.html"
    status, printed, errors = sceau_here("page", "--out", str(verifier), "--lang", "en")
    assert status == 0, errors
    assert "the reader chooses the consortium's genesis file" in printed
    with opened(browser, verifier.as_uri(), locale="fr-FR") as page:
        assert page.get_attribute("html", "lang") == "en"
        assert page.locator("#genesis-field").is_visible()
        page.set_input_files("#document-input", devnet.documents[PERMIT_REFERENCE])
        page.set_input_files("#receipt-input", devnet.permit_receipt)
        page.wait_for_function("document.getElementById('result').innerText.includes('genesis')")
        drop(page, devnet.genesis_file)
        page.wait_for_function(
            "document.getElementById('consortium').innerText.includes('identifier')"
        )
        page.get_by_role("button", name="Verify", exact=True).click()
        verified = outcome(page, "verified")
        assert PERMIT_REFERENCE in verified.inner_text()
        assert "genesis.json" in page.inner_text("#chosen")


def test_an_altered_receipt_file_is_refused_offline(
    devnet: Devnet, browser: Any, tmp_path: Path
) -> None:
    verifier = _offline_page(devnet, tmp_path)
    receipt = json.loads(devnet.permit_receipt.read_text())
    receipt["certificate"]["signatures"][0][1] = "00" * 64
    altered = tmp_path / "altered.receipt.json"
    altered.write_text(json.dumps(receipt))
    document = devnet.documents[PERMIT_REFERENCE]
    step = python_refusal(receipt, devnet.genesis_file, document.read_bytes())
    with opened(browser, verifier.as_uri(), locale="en-GB") as page:
        page.set_input_files("#receipt-input", altered)
        page.set_input_files("#document-input", document)
        refused = outcome(page, "refused")
        assert refused.get_attribute("data-step") == step
        assert "This receipt file is not a valid proof" in refused.inner_text()
        screenshot(page, "page-offline-refused")


def test_an_offline_file_with_a_witness_policy_refuses_a_checkpoint_no_witness_cosigned(
    devnet: Devnet, browser: Any, tmp_path: Path
) -> None:
    """The devnet runs no witness: a file that requires the préfecture's cosignature refuses
    every receipt's checkpoint, as ``sceau verify --witness`` does."""
    vkey = NoteVerifierKey.for_private_key(
        "prefecture.example/witness", KeyType.COSIGNATURE_V1, crypto.key_from_seed(sha256(b"p"))
    ).vkey
    verifier = _offline_page(devnet, tmp_path, "--witness", f"prefecture={vkey}")
    document = devnet.documents[PERMIT_REFERENCE]
    receipt = json.loads(devnet.permit_receipt.read_text())
    policy = WitnessPolicy.parse([f"prefecture={vkey}"], None)
    step = python_refusal(receipt, devnet.genesis_file, document.read_bytes(), policy)
    assert step == "witnesses"
    with opened(browser, verifier.as_uri(), locale="en-GB") as page:
        page.set_input_files("#receipt-input", devnet.permit_receipt)
        page.set_input_files("#document-input", document)
        refused = outcome(page, "refused")
        assert refused.get_attribute("data-step") == step
        assert 'The check "witness cosignatures" failed.' in refused.inner_text()
        screenshot(page, "page-offline-witness-policy")


def test_an_amended_act_shows_its_status_and_links_to_the_amending_act(
    devnet: Devnet, browser: Any
) -> None:
    with opened(browser, f"{devnet.api_url}/") as page:
        page.set_input_files("#document-input", devnet.documents[AMENDED_REFERENCE])
        verified = outcome(page, "verified")
        assert verified.get_attribute("data-status") == "amended"
        assert "En vigueur, modifié" in verified.inner_text()
        screenshot(page, "page-amended")
        page.get_by_role("link", name=AMENDING_REFERENCE).click()
        selector = f'#result article[data-reference="{AMENDING_REFERENCE}"]'
        page.wait_for_selector(selector, timeout=OUTCOME_TIMEOUT_MS)
        other = page.locator(selector)
        assert other.get_attribute("data-outcome") == "verified"
        text = other.inner_text()
        assert "Acte vérifié dans le registre" in text and "modifie" in text
        assert page.get_by_role("link", name=AMENDED_REFERENCE).count() == 1
        screenshot(page, "page-amending-act")


def test_keyboard_only_reaches_the_file_input_and_the_result_is_announced(
    devnet: Devnet, browser: Any
) -> None:
    with opened(browser, f"{devnet.api_url}/") as page:
        for _ in range(12):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "document-input":
                break
        else:
            pytest.fail("the document input is not reachable with Tab")
        focus = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert focus != "none"
        with page.expect_file_chooser() as chooser:
            page.keyboard.press("Space")
        chooser.value.set_files(devnet.documents[MEMBER_REFERENCE])
        outcome(page, "verified")
        region = page.locator("#result")
        assert region.get_attribute("aria-live") == "polite"
        assert region.get_attribute("aria-busy") == "false"
        assert "Document authentique" in region.inner_text()
        assert page.get_by_label("Choisir le document à vérifier").count() == 1
        screenshot(page, "page-keyboard")


def test_on_plain_http_from_another_host_the_page_says_it_needs_a_secure_context(
    devnet: Devnet, browser: Any
) -> None:
    """The node's own page, as a reader would get it from http://registre.example (served
    here by Playwright, without DNS): not a secure context, so no WebCrypto."""
    with urllib.request.urlopen(f"{devnet.api_url}/", timeout=10) as answer:
        html, policy = answer.read(), answer.headers["Content-Security-Policy"]
    context = browser.new_context(locale="fr-FR")
    try:
        page = context.new_page()
        page.route(
            "http://registre.example/**",
            lambda route: route.fulfill(
                body=html,
                content_type="text/html; charset=utf-8",
                headers={"Content-Security-Policy": policy},
            ),
        )
        page.goto("http://registre.example/")
        assert page.evaluate("window.isSecureContext") is False
        notice = page.locator("#insecure")
        assert notice.is_visible() and notice.get_attribute("role") == "alert"
        assert "https://" in notice.inner_text() and "sceau page" in notice.inner_text()
        assert page.locator("#verify-button").is_disabled()
        page.set_input_files("#document-input", devnet.documents[MEMBER_REFERENCE])
        page.wait_for_function("document.getElementById('result').innerText.includes('https')")
        assert page.locator("#result article").count() == 0
        screenshot(page, "page-insecure-context")
    finally:
        context.close()
