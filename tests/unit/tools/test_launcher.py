"""Launcher details that need no broker."""

from __future__ import annotations

import base64

from streams.tools.broker import launcher


def test_cluster_ids_never_look_like_options() -> None:
    ids = [launcher.new_cluster_id() for _ in range(5000)]  # P(no '-' start in 5000) ~ 1e-34
    assert not any(i.startswith("-") for i in ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)


def test_free_ports_are_bindable() -> None:
    port = launcher.free_port()
    assert launcher.port_is_free(port)
