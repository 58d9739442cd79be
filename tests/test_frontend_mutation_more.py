"""More changes in place: ``xs.pop(i)``, ``xs.remove(x)``, ``xs.insert(i, x)``,
slice assignment and deletion, ``xs[i] = xs[j] = v``, and changing methods
used inside expressions (``stack.append(stack.pop() + stack.pop())``,
``return d, d.pop(k, -1)``), which are taken out into statements in
Python's order of evaluation.

Each machine is run three ways against the plain Python function (see
tests/test_frontend_mutation.py): the function, the compiled plain step and
the owned step, which changes the state in place and undoes a failing step.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop import FrontendError, statemachine
from arrowloop.compiler import generated_source
from tests.differential import run_differential as _run
from tests.profiles import examples

SMALL = st.integers(-4, 4)


@statemachine(init=[1, 2, 3])
def lists(msg: tuple[str, int], xs: list[int]) -> tuple[list[int], int]:
    op, v = msg
    if op == "pop":
        got = xs.pop(v)  # IndexError out of range, as Python
        return xs, got
    if op == "drop":
        xs.pop(v)
        return xs, len(xs)
    if op == "remove":
        xs.remove(v)  # ValueError when absent
        return xs, len(xs)
    if op == "insert":
        xs.insert(v, v * 10)  # clamped, as Python
        return xs, len(xs)
    if op == "del":
        del xs[v:]
        return xs, len(xs)
    if op == "delat":
        del xs[v]  # IndexError out of range, as Python
        return xs, len(xs)
    if op == "every":
        del xs[::v]  # ValueError for a step of 0
        return xs, len(xs)
    if op == "splice":
        xs[v : v + 1] = [v, v]
        return xs, len(xs)
    xs.append(v)
    return xs, len(xs)


OPS = st.sampled_from(
    ["pop", "drop", "remove", "insert", "del", "delat", "every", "splice", "append"]
)


@settings(max_examples=examples(150))
@given(st.lists(st.tuples(OPS, SMALL), max_size=12))
def test_list_changes(inputs: list[tuple[str, int]]) -> None:
    _run(lists, inputs)


@statemachine(init=([], {}))
def exprs(
    msg: tuple[str, int], s: tuple[list[int], dict[int, int]]
) -> tuple[tuple[list[int], dict[int, int]], int]:
    xs, d = s
    op, v = msg
    if op == "add":
        xs.append(xs.pop() + xs.pop())  # IndexError below two items
        return (xs, d), len(xs)
    if op == "len":
        n = len(xs) * 100 + xs.pop(0)  # the length is read before the pop
        return (xs, d), n
    if op == "none":
        d.pop(v, None)
        got = d.pop(v + 1, None)
        return (xs, d), -1 if got is None else got
    if op == "flag":
        if d.pop(v, 0):
            return (xs, d), 1
        d[v] = d.setdefault(v + 1, 0) + xs.pop()
        return (xs, d), d[v]
    if op == "move":
        d[v] = xs.pop(v)  # IndexError, before the item is set
        return (xs, d), len(d)
    if op == "both":
        d[v] = d[-v] = v
        return (xs, d), len(d)
    if op == "sum":
        n = v
        n += xs.pop()
        return (xs, d), n
    xs.append(v)
    return (xs, d), xs.pop() - xs.pop(-1) // 2


EXPR_OPS = st.sampled_from(["add", "len", "none", "flag", "move", "both", "sum", "push"])


@settings(max_examples=examples(150))
@given(st.lists(st.tuples(EXPR_OPS, SMALL), max_size=14))
def test_changes_inside_expressions(inputs: list[tuple[str, int]]) -> None:
    _run(exprs, inputs)


@statemachine(init={})
def reply_with_the_dict(k: int, d: dict[int, int]) -> tuple[dict[int, int], tuple[int, int]]:
    d[k] = k
    # Python's tuple holds the dict itself, so it sees the pop after it.
    t = (len(d), d.pop(k - 1, -1))
    return d, t


@settings(max_examples=examples(60))
@given(st.lists(SMALL, max_size=10))
def test_a_name_before_a_change_reads_the_changed_value(inputs: list[int]) -> None:
    _run(reply_with_the_dict, inputs)


def test_pop_at_an_index_is_in_place_and_logged() -> None:
    src = generated_source(lists.machine.typed, owned=True)
    assert "_RA" in src
    assert "_IA" in src
    step, _ = lists.machine.owned_step()
    s = lists.machine.copy_state(lists.init)
    xs = s
    s, got = step(("pop", 0), s)
    assert got == 1
    assert s is xs
    assert s == [2, 3]
    with pytest.raises(ValueError, match="not in list"):
        step(("remove", 9), s)
    assert s == [2, 3]


def test_a_change_in_a_branch_of_a_conditional_expression_stays_refused() -> None:
    with pytest.raises(FrontendError, match="write it as a statement of its own"):

        @statemachine(init=[])
        def bad(x: int, xs: list[int]) -> tuple[list[int], int]:
            y = xs.pop() if x > 0 else 0
            return xs, y


# -- a name for a list inside a dict -----------------------------------------------------


@statemachine(init={})
def clickers(msg: tuple[str, int], table: dict[str, list[int]]) -> tuple[dict[str, list[int]], int]:
    ad, user = msg
    users = table.setdefault(ad, [])  # users is table[ad]: a change shows in table
    if user not in users:
        users.append(user)
    if user < 0:
        users.pop(0)
    return table, len(users)


@statemachine(init={"a": [1]})
def entry(msg: tuple[str, int], d: dict[str, list[int]]) -> tuple[dict[str, list[int]], int]:
    k, v = msg
    xs = d[k]  # KeyError when absent, here
    xs.append(v)
    xs[0] = xs[0] + 1
    return d, len(xs)


@settings(max_examples=examples(100))
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), SMALL), max_size=12))
def test_a_name_for_a_dict_entry_changes_the_entry(inputs: list[tuple[str, int]]) -> None:
    _run(clickers, inputs)
    _run(entry, inputs)


def test_a_name_for_an_entry_that_is_replaced_is_refused() -> None:
    with pytest.raises(FrontendError, match="xs and d may be the same"):

        @statemachine(init={})
        def bad(k: str, d: dict[str, list[int]]) -> tuple[dict[str, list[int]], int]:
            xs = d.setdefault(k, [])
            d[k] = [0]  # xs is no longer d[k], in Python
            xs.append(1)
            return d, len(xs)


@statemachine(init={})
def topics(msg: tuple[str, str, int], d: dict[str, set[int]]) -> tuple[dict[str, set[int]], int]:
    op, topic, who = msg
    if op == "sub":
        d.setdefault(topic, set()).add(who)
    elif op == "unsub":
        d.get(topic, set()).discard(who)  # nothing happens for an unknown topic
    else:
        d.get(topic, set()).remove(who)  # KeyError for an unknown topic too
    return d, len(d.get(topic, set()))


@settings(max_examples=examples(100))
@given(
    st.lists(
        st.tuples(st.sampled_from(["sub", "unsub", "drop"]), st.sampled_from("ab"), SMALL),
        max_size=12,
    )
)
def test_a_change_through_get_with_a_new_default(inputs: list[tuple[str, str, int]]) -> None:
    _run(topics, inputs)


def test_a_change_through_get_with_a_named_default_is_refused() -> None:
    with pytest.raises(FrontendError):

        @statemachine(init={})
        def bad(k: str, d: dict[str, list[int]]) -> tuple[dict[str, list[int]], int]:
            spare: list[int] = []
            d.get(k, spare).append(1)  # changes spare when k is absent, in Python
            return d, len(spare)


# -- a loop over a list that its body changes ---------------------------------------------


def test_changing_the_list_a_loop_walks_is_refused() -> None:
    with pytest.raises(FrontendError, match="the loop body changes xs"):

        @statemachine(init=[])
        def bad(v: int, xs: list[int]) -> tuple[list[int], int]:
            for x in xs:  # Python's loop skips the item after a removed one
                if x == v:
                    xs.remove(x)
            return xs, len(xs)

    with pytest.raises(FrontendError, match="the loop body changes d"):

        @statemachine(init={})
        def bad_items(k: str, d: dict[str, int]) -> tuple[dict[str, int], int]:
            for _, n in d.items():  # Python's items() sees the new values
                d[k] = n + 1
            return d, len(d)


def test_changing_the_items_a_loop_walks_while_the_list_is_read_later_is_refused() -> None:
    """The loop's name is each item itself in Python: a change through it
    changes the list, which a loop body (carrying only what it uses) must
    still see."""
    with pytest.raises(FrontendError, match="row and rows may be the same list"):

        @statemachine(init=[[0], [0]])
        def bad(v: int, rows: list[list[int]]) -> tuple[list[list[int]], int]:
            for row in rows:
                row.append(v)
            return rows, len(rows)

    with pytest.raises(FrontendError, match="row and rows may be the same list"):

        @statemachine(init=[[0], [0]])
        def bad_enumerate(v: int, rows: list[list[int]]) -> tuple[list[list[int]], int]:
            for i, row in enumerate(rows):
                row[0] += v + i
            return rows, 0

    with pytest.raises(FrontendError, match="row and rows may be the same list"):

        @statemachine(init=[[0], [0]])
        def bad_while(v: int, rows: list[list[int]]) -> tuple[list[list[int]], int]:
            n = 0
            while n < 1:
                n += 1
                for row in rows:
                    row.append(v)
            return rows, n


@statemachine(init=[])
def walk_a_copy(v: int, xs: list[int]) -> tuple[list[int], int]:
    xs.append(v)
    for x in list(xs):
        if x == v:
            xs.remove(x)
    counts = {str(x): 0 for x in xs}
    for key in counts:
        counts[key] += 1  # the values of the keys walked: as in Python
    return xs, sum(counts.values())


@settings(max_examples=examples(60))
@given(st.lists(SMALL, max_size=10))
def test_a_loop_over_a_copy_may_change_the_original(inputs: list[int]) -> None:
    _run(walk_a_copy, inputs)


# -- appending to a dict's entry ----------------------------------------------------------


@statemachine(init={})
def per_key(msg: tuple[str, int], d: dict[str, list[int]]) -> tuple[dict[str, list[int]], int]:
    k, v = msg
    d.setdefault(k, []).append(v)
    d[k].append(v)
    if v < 0:
        raise ValueError("negative")
    return d, len(d[k])


def test_appending_to_a_dict_entry_is_in_place_and_undone_when_the_step_fails() -> None:
    assert ".append(" in generated_source(per_key.machine.typed, owned=True)
    step, _ = per_key.machine.owned_step()
    s = per_key.machine.copy_state(per_key.init)
    s, _ = step(("a", 1), s)
    entry = s["a"]
    s, n = step(("a", 2), s)
    assert n == 4
    assert s["a"] is entry  # appended to where it is, not copied
    with pytest.raises(Exception, match="negative"):
        step(("a", -1), s)
    assert s == {"a": [1, 1, 2, 2]}
    with pytest.raises(Exception, match="negative"):
        step(("b", -1), s)
    assert s == {"a": [1, 1, 2, 2]}


@settings(max_examples=examples(60))
@given(st.lists(st.tuples(st.sampled_from("ab"), SMALL), max_size=10))
def test_appending_to_a_dict_entry(inputs: list[tuple[str, int]]) -> None:
    _run(per_key, inputs)


@statemachine(init={})
def branches(
    msg: tuple[str, str, int], table: dict[str, list[int]]
) -> tuple[dict[str, list[int]], int]:
    op, k, v = msg
    if op == "add":
        users = table.setdefault(k, [])  # a name for the entry, in a branch that returns
        users.append(v)
        users.insert(0, v * 2)
        return table, len(users)
    if op == "pop":
        users = table.setdefault(k, [9])
        n = users.pop() + len(users)
        return table, n
    if op == "rm":
        xs = table[k]
        if v in xs:
            xs.remove(v)
        del xs[0:1]
        return table, sum(xs)
    return table, len(table.get(k, []))


@settings(max_examples=examples(100))
@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "pop", "rm", "get"]), st.sampled_from("ab"), SMALL),
        max_size=12,
    )
)
def test_names_for_entries_in_branches(inputs: list[tuple[str, str, int]]) -> None:
    _run(branches, inputs)


def test_a_refusal_shows_a_call_taken_out_as_written() -> None:
    with pytest.raises(FrontendError) as err:

        @statemachine(init={})
        def bad(k: str, d: dict[str, list[int]]) -> tuple[dict[str, list[int]], int]:
            e = (d.setdefault(k, []), 1)
            d[k].append(1)
            return d, len(e[0])

    text = str(err.value)
    assert "d.setdefault(k, [])" in text
    assert "%h" not in text


@statemachine(init={})
def per_key_sets(msg: tuple[str, int], d: dict[str, set[int]]) -> tuple[dict[str, set[int]], int]:
    k, v = msg
    w = -v
    d.setdefault(k, set()).add(v)
    d[k].add(w)
    if v == 3:
        d["zz"].add(v)  # KeyError
    if v < 0:
        raise ValueError("negative")
    return d, len(d[k])


def test_adding_to_a_set_in_a_dict_is_in_place_and_undone_when_the_step_fails() -> None:
    step, _ = per_key_sets.machine.owned_step()
    s = per_key_sets.machine.copy_state(per_key_sets.init)
    s, _ = step(("a", 1), s)
    entry = s["a"]
    s, n = step(("a", 2), s)
    assert n == 4
    assert s["a"] is entry
    with pytest.raises(Exception, match="negative"):
        step(("a", -4), s)
    assert s == {"a": {1, -1, 2, -2}}


@settings(max_examples=examples(60))
@given(st.lists(st.tuples(st.sampled_from("ab"), SMALL), max_size=10))
def test_adding_to_a_set_in_a_dict(inputs: list[tuple[str, int]]) -> None:
    _run(per_key_sets, inputs)
