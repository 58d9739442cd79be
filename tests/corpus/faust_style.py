"""faust style: agents over streams of records updating tables (per-key counters).

Part of the corpus of issue 13. A faust agent is
``async for event in stream: table[event.key] += 1``; the table is the
state. Here the body of the loop is the step: the event is the message and
the table (a dict, or a record holding several tables) is the state.
"""

from __future__ import annotations

import enum

import attrs
from hypothesis import strategies as st

from tests.corpus._entry import Style

CORPUS = Style("faust")

USERS = st.sampled_from(["ann", "bob", "cy"])
PAGES = st.sampled_from(["/", "/a", "/b"])


@attrs.frozen
class PageView:
    """faust's tutorial record: a page viewed by a user."""

    id: str
    user: str


PAGE_VIEWS = st.builds(PageView, PAGES, USERS)


def page_view_counter(view: PageView, table: dict[str, int]) -> tuple[dict[str, int], int]:
    """faust: the page-views tutorial agent, ``page_views[view.id] += 1``."""
    table[view.id] += 1
    return table, table[view.id]


CORPUS.add(page_view_counter, {"/": 0, "/a": 0, "/b": 0}, PAGE_VIEWS)


def page_view_counter_get(view: PageView, table: dict[str, int]) -> tuple[dict[str, int], int]:
    """faust: the page-views counter on a table without a default (``.get(k, 0) + 1``)."""
    table[view.id] = table.get(view.id, 0) + 1
    return table, table[view.id]


CORPUS.add(page_view_counter_get, {}, PAGE_VIEWS)


def user_page_matrix(
    view: PageView, table: dict[tuple[str, str], int]
) -> tuple[dict[tuple[str, str], int], int]:
    """faust: a table keyed by (user, page) pairs."""
    key = (view.user, view.id)
    table[key] = table.get(key, 0) + 1
    return table, table[key]


CORPUS.add(user_page_matrix, {}, PAGE_VIEWS)


@attrs.frozen
class Order:
    """An order event: account, product, quantity and unit price in cents."""

    account: str
    product: str
    quantity: int
    price: int


ORDERS = st.builds(
    Order, USERS, st.sampled_from(["tea", "pen"]), st.integers(0, 3), st.integers(1, 500)
)


def revenue_per_account(order: Order, revenue: dict[str, int]) -> tuple[dict[str, int], int]:
    """faust: revenue per account, the total of ``quantity * price``."""
    revenue[order.account] = revenue.get(order.account, 0) + order.quantity * order.price
    return revenue, revenue[order.account]


CORPUS.add(revenue_per_account, {}, ORDERS)


@attrs.frozen
class Tables:
    """An app with two tables: orders per product and quantity per product."""

    orders: dict[str, int]
    quantity: dict[str, int]


def two_tables(order: Order, t: Tables) -> tuple[Tables, str]:
    """faust: an agent updating two tables from one event."""
    t.orders[order.product] = t.orders.get(order.product, 0) + 1
    t.quantity[order.product] = t.quantity.get(order.product, 0) + order.quantity
    return (
        t,
        f"{order.product}: {t.orders[order.product]} orders, {t.quantity[order.product]} items",
    )


CORPUS.add(two_tables, Tables({}, {}), ORDERS)


def large_order_alert(order: Order, alerts: int) -> tuple[int, str | None]:
    """faust: a filtering agent counting and reporting orders over 1000 cents."""
    total = order.quantity * order.price
    if total > 1000:
        alerts += 1
        return alerts, f"ALERT #{alerts}: {order.account} spent ${total / 100:.2f}"
    return alerts, None


CORPUS.add(large_order_alert, 0, ORDERS)


@attrs.frozen
class Withdrawal:
    """A withdrawal event from the faust docs' fraud example."""

    user: str
    country: str
    amount: float


WITHDRAWALS = st.builds(
    Withdrawal, USERS, st.sampled_from(["SE", "NO", "US"]), st.integers(1, 900).map(float)
)


def withdrawals_per_country(
    w: Withdrawal, totals: dict[str, float]
) -> tuple[dict[str, float], float]:
    """faust: the ``withdrawals`` example's per-country amount table."""
    totals[w.country] = totals.get(w.country, 0) + w.amount
    return totals, totals[w.country]


CORPUS.add(withdrawals_per_country, {}, WITHDRAWALS)


def country_change_detector(
    w: Withdrawal, last_country: dict[str, str]
) -> tuple[dict[str, str], bool]:
    """faust: flag a user withdrawing from a country other than the last one."""
    previous = last_country.get(w.user)
    last_country[w.user] = w.country
    return last_country, previous is not None and previous != w.country


CORPUS.add(country_change_detector, {}, WITHDRAWALS)


def hopping_window_counts(
    msg: tuple[str, int], windows: dict[int, int]
) -> tuple[dict[int, int], list[int]]:
    """faust: a hopping window (size 10, step 5) table keyed by window start."""
    _, ts = msg
    starts = [s for s in range(ts - ts % 5 - 5, ts + 1, 5) if s >= 0 and s <= ts < s + 10]
    for start in starts:
        windows[start] = windows.get(start, 0) + 1
    for start in list(windows):
        if start + 10 <= ts - 20:
            del windows[start]
    return windows, [windows[s] for s in starts]


CORPUS.add(hopping_window_counts, {}, st.tuples(USERS, st.integers(0, 60)))


def tumbling_table(
    msg: tuple[str, int], table: dict[tuple[str, int], int]
) -> tuple[dict[tuple[str, int], int], int]:
    """faust: ``table.tumbling(60)`` by hand: a count per (key, window) with an int in the key."""
    key, ts = msg
    window = ts // 60
    table[(key, window)] = table.get((key, window), 0) + 1
    return table, table[(key, window)]


CORPUS.add(tumbling_table, {}, st.tuples(USERS, st.integers(0, 200)))


class Level(enum.Enum):
    """A log level."""

    DEBUG = 10
    INFO = 20
    ERROR = 40


@attrs.frozen
class LogLine:
    """A log line: its service, level and message."""

    service: str
    level: Level
    message: str


LOG_LINES = st.builds(
    LogLine,
    st.sampled_from(["api", "db"]),
    st.sampled_from(list(Level)),
    st.sampled_from(["ok", "boom"]),
)


def errors_per_level(line: LogLine, table: dict[Level, int]) -> tuple[dict[Level, int], int]:
    """faust: a table keyed by an enum, counting log lines per level."""
    table[line.level] = table.get(line.level, 0) + 1
    return table, table[line.level]


CORPUS.add(errors_per_level, {}, LOG_LINES)


def error_rate(
    line: LogLine, s: dict[str, tuple[int, int]]
) -> tuple[dict[str, tuple[int, int]], float]:
    """faust: the error rate per service, a (errors, total) pair per key."""
    errors, total = s.get(line.service, (0, 0))
    if line.level == Level.ERROR:
        errors += 1
    total += 1
    s[line.service] = (errors, total)
    return s, errors / total


CORPUS.add(error_rate, {}, LOG_LINES)


def error_burst(line: LogLine, s: dict[str, int]) -> tuple[dict[str, int], str | None]:
    """faust: alert after three consecutive errors of one service; any other level resets."""
    if line.level is not Level.ERROR:
        s.pop(line.service, None)
        return s, None
    s[line.service] = s.get(line.service, 0) + 1
    if s[line.service] == 3:
        return s, f"{line.service} is failing"
    return s, None


CORPUS.add(error_burst, {}, LOG_LINES)


def latest_value_table(
    msg: tuple[str, int], table: dict[str, int]
) -> tuple[dict[str, int], int | None]:
    """faust: a changelog table keeping the latest value, replying with the previous one."""
    key, value = msg
    old = table.get(key)
    table[key] = value
    return table, old


CORPUS.add(latest_value_table, {}, st.tuples(USERS, st.integers(-5, 5)))


def leaderboard(msg: tuple[str, int], scores: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """faust: a game's leaderboard: add points, reply with the top three players."""
    player, points = msg
    scores[player] = scores.get(player, 0) + points
    top = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return scores, [name for name, _ in top]


CORPUS.add(leaderboard, {}, st.tuples(st.sampled_from(["p1", "p2", "p3", "p4"]), st.integers(0, 9)))


@attrs.frozen
class Click:
    """A click on an ad."""

    ad: str
    user: str


def unique_clickers(click: Click, table: dict[str, list[str]]) -> tuple[dict[str, list[str]], int]:
    """faust: distinct users per ad, kept as a list with a membership test."""
    users = table.setdefault(click.ad, [])
    if click.user not in users:
        users.append(click.user)
    return table, len(users)


CORPUS.add(unique_clickers, {}, st.builds(Click, st.sampled_from(["ad1", "ad2"]), USERS))


def click_through(
    msg: tuple[str, bool], s: dict[str, list[int]]
) -> tuple[dict[str, list[int]], float]:
    """faust: the click-through rate per ad; each event is an impression, maybe clicked."""
    ad, clicked = msg
    if ad not in s:
        s[ad] = [0, 0]
    s[ad][0] += 1
    if clicked:
        s[ad][1] += 1
    shown, clicks = s[ad]
    return s, clicks / shown


CORPUS.add(click_through, {}, st.tuples(st.sampled_from(["ad1", "ad2"]), st.booleans()))


def inventory(msg: tuple[str, str, int], stock: dict[str, int]) -> tuple[dict[str, int], str]:
    """faust: a stock table updated by ``restock``/``sell`` events, refusing to oversell."""
    op, sku, qty = msg
    have = stock.get(sku, 0)
    if op == "restock":
        stock[sku] = have + qty
        return stock, "ok"
    if qty > have:
        return stock, f"only {have} {sku} left"
    stock[sku] = have - qty
    if stock[sku] == 0:
        del stock[sku]
    return stock, "ok"


CORPUS.add(
    inventory,
    {},
    st.tuples(st.sampled_from(["restock", "sell"]), st.sampled_from(["x", "y"]), st.integers(0, 4)),
)


def sensor_table_stats(
    msg: tuple[str, float], s: dict[str, list[float]]
) -> tuple[dict[str, list[float]], tuple[float, float, float]]:
    """faust: min, max and mean per sensor from the readings kept in a table."""
    sensor, value = msg
    s.setdefault(sensor, []).append(value)
    readings = s[sensor]
    return s, (min(readings), max(readings), sum(readings) / len(readings))


CORPUS.add(sensor_table_stats, {}, st.tuples(USERS, st.integers(-20, 20).map(float)))


def partition_router(msg: tuple[str, int], counts: list[int]) -> tuple[list[int], int]:
    """faust: route a key to one of four partitions by a stable hash; count per partition."""
    key, _ = msg
    partition = sum(ord(c) for c in key) % len(counts)
    counts[partition] += 1
    return counts, partition


CORPUS.add(partition_router, [0, 0, 0, 0], st.tuples(USERS, st.integers(0, 1)))


def agent_with_ack(msg: str, s: tuple[int, list[str]]) -> tuple[tuple[int, list[str]], str]:
    """faust: an agent that replies (``yield``) to each request with a sequence number."""
    seq, log = s
    seq += 1
    log = [*log, msg][-5:]
    return (seq, log), f"{seq}:{msg.upper()}"


CORPUS.add(agent_with_ack, (0, []), st.sampled_from(["ping", "hi"]))


def daily_totals(
    msg: tuple[str, int], totals: dict[str, int]
) -> tuple[dict[str, int], dict[str, int]]:
    """faust: totals per day from ISO timestamps (``2024-01-02T10:00``), a snapshot replied."""
    stamp, amount = msg
    day = stamp.split("T")[0]
    totals[day] = totals.get(day, 0) + amount
    return totals, dict(totals)


CORPUS.add(
    daily_totals,
    {},
    st.tuples(st.sampled_from(["2024-01-01T09:00", "2024-01-02T10:00"]), st.integers(0, 9)),
)
