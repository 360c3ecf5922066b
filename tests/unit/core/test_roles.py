"""The role transition table as the README shows it, and the role a cycle reaches."""

from __future__ import annotations

from pathlib import Path

import pytest

from haagent.core.roles import TRANSITIONS, Role, role_reached, role_shown, transition_table
from support.snapshots import primary_pg, replica_pg, stopped_pg

README = Path(__file__).resolve().parents[3] / "README.md"
BEGIN = "<!-- transition table: haagent.core.roles.transition_table() -->\n"
END = "<!-- end of the transition table -->"


def test_the_readme_shows_the_transition_table_as_the_code_has_it() -> None:
    text = README.read_text()
    assert BEGIN in text and END in text, "the README lost its transition table markers"
    shown = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    assert shown == transition_table(), (
        "README.md's transition table differs from haagent/core/roles.py: paste the output "
        "of `python -c 'from haagent.core.roles import transition_table as t; print(t(), "
        'end="")\'` between the markers'
    )


def test_the_rendered_table_has_one_row_per_transition_with_its_reason() -> None:
    rows = transition_table().splitlines()[2:]
    assert len(rows) == len(TRANSITIONS)
    assert "| replica | primary | won the leader race, or was chosen by a switchover |" in rows
    assert rows[0].startswith("| uninitialized | uninitialized |")  # in the order of Role


@pytest.mark.parametrize(
    ("before", "decided", "failed", "reached"),
    [
        (Role.REPLICA, Role.PRIMARY, False, Role.PRIMARY),
        (Role.REPLICA, Role.PRIMARY, True, Role.REPLICA),  # the promotion failed: still one
        (Role.PRIMARY, Role.DEMOTED, True, Role.DEMOTED),  # stopping writes counts at once
        (Role.UNINITIALIZED, Role.BOOTSTRAPPING, True, Role.BOOTSTRAPPING),
    ],
)
def test_the_role_reached(before: Role, decided: Role, failed: bool, reached: Role) -> None:
    assert role_reached(before, decided, failed) == reached


def test_the_role_shown_is_the_primary_only_with_the_key_and_a_read_write_postgres() -> None:
    assert role_shown(Role.PRIMARY, True, primary_pg()) == Role.PRIMARY
    assert role_shown(Role.PRIMARY, True, replica_pg()) == Role.REPLICA  # still in recovery
    assert role_shown(Role.PRIMARY, False, stopped_pg()) == Role.PRIMARY  # nothing better
    assert role_shown(Role.REPLICA, False, replica_pg()) == Role.REPLICA
