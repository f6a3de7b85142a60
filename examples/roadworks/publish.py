"""Publish one road-works decree with sceau's client library, and print the outcome.

    python publish.py API_URL KEY_FILE

API_URL is a member node's API (``sceau devnet up`` prints them), KEY_FILE a key that holds
the role ``roadworks.publish`` for the issuer: here, the member's own node key.
"""

import json
import sys

from ledger.client import Client
from ledger.crypto import load_private_key

api_url, key_file = sys.argv[1], sys.argv[2]
decree = {
    "issuer": "metropole-valbrune",
    "number": "2026-VOI-0142",
    "road": "Rue des Tanneurs, entre le pont Neuf et la place du Marché",
    "restriction": "closed",
    "starts": "2026-12-07",
    "ends": "2026-12-18",
}
with Client(api_url, signer=load_private_key(key_file)) as client:
    transaction = client.build("roadworks", "publish", decree)
    outcome = client.submit(transaction, wait_s=30)  # carried to its commit
print(
    json.dumps(
        {"status": outcome["status"], "height": outcome["height"], "result": outcome["result"]}
    )
)
