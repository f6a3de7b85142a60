"""``sceau witness``: a tlog-witness server that cosigns a consortium's checkpoints.

:mod:`node.witness.config` reads ``witness.toml``; :mod:`node.witness.state` keeps what was
cosigned, durably; :mod:`node.witness.server` checks add-checkpoint requests and serves them.
"""
