"""pykka and thespian style: actors dispatching on message classes.

Part of the corpus of issue 13. A pykka actor's ``on_receive(self, message)``
and a thespian actor's ``receiveMessage(self, message, sender)`` dispatch on
the message's class (``isinstance`` chains, or ``match``) and keep their
state in ``self``; here ``self``'s fields are the state record, returned
after the step, and the reply is the output.
"""

from __future__ import annotations

import attrs
from hypothesis import strategies as st

from tests.corpus._entry import Style

CORPUS = Style("actors")

KEYS = st.sampled_from(["a", "b", "c"])
AMOUNTS = st.integers(-5, 20)


# -- a key-value store ---------------------------------------------------------------


@attrs.frozen
class KvPut:
    """KvPut ``value`` under ``key``."""

    key: str
    value: int


@attrs.frozen
class KvGet:
    """Ask for the value under ``key``."""

    key: str


@attrs.frozen
class Delete:
    """Remove ``key``."""

    key: str


@attrs.frozen
class Keys:
    """Ask for all keys, sorted."""


KvMsg = KvPut | KvGet | Delete | Keys
KV_MSGS = st.one_of(
    st.builds(KvPut, KEYS, AMOUNTS),
    st.builds(KvGet, KEYS),
    st.builds(Delete, KEYS),
    st.just(Keys()),
)


def kv_store_match(
    msg: KvMsg, store: dict[str, int]
) -> tuple[dict[str, int], int | list[str] | None]:
    """pykka: a key-value store actor, ``match`` on the message class."""
    match msg:
        case KvPut(key, value):
            store[key] = value
            return store, None
        case KvGet(key):
            return store, store.get(key)
        case Delete(key):
            return store, store.pop(key, None)
        case Keys():
            return store, sorted(store)


CORPUS.add(kv_store_match, {}, KV_MSGS)


def kv_store_isinstance(msg: KvMsg, store: dict[str, int]) -> tuple[dict[str, int], str]:
    """thespian: the key-value store with an ``isinstance`` chain, as ``receiveMessage`` does."""
    if isinstance(msg, KvPut):
        store[msg.key] = msg.value
        return store, "ok"
    if isinstance(msg, KvGet):
        if msg.key not in store:
            return store, "missing"
        return store, str(store[msg.key])
    if isinstance(msg, Delete):
        if msg.key in store:
            del store[msg.key]
            return store, "deleted"
        return store, "missing"
    return store, ",".join(sorted(store.keys()))


CORPUS.add(kv_store_isinstance, {}, KV_MSGS)


def kv_store_raises(msg: KvMsg, store: dict[str, int]) -> tuple[dict[str, int], int]:
    """pykka: a store whose ``KvGet`` of a missing key fails the ask with a ``KeyError``."""
    match msg:
        case KvPut(key, value):
            store[key] = value
            return store, value
        case KvGet(key):
            return store, store[key]
        case Delete(key):
            del store[key]
            return store, 0
        case _:
            return store, len(store)


CORPUS.add(kv_store_raises, {}, KV_MSGS)


@attrs.frozen
class VersionedStore:
    """A store with a version number bumped by every write."""

    data: dict[str, int]
    version: int = 0


def versioned_kv(msg: KvMsg, s: VersionedStore) -> tuple[VersionedStore, tuple[int, int | None]]:
    """thespian: a versioned store; every reply carries the version."""
    match msg:
        case KvPut(key, value):
            s.data[key] = value
            s = attrs.evolve(s, version=s.version + 1)
        case Delete(key) if key in s.data:
            del s.data[key]
            s = attrs.evolve(s, version=s.version + 1)
        case KvGet(key):
            return s, (s.version, s.data.get(key))
    return s, (s.version, None)


CORPUS.add(versioned_kv, VersionedStore({}), KV_MSGS)


# -- bank accounts ---------------------------------------------------------------------


@attrs.frozen
class Credit:
    """Add ``amount`` to the balance."""

    amount: int


@attrs.frozen
class Debit:
    """Take ``amount`` from the balance."""

    amount: int


@attrs.frozen
class GetBalance:
    """Ask for the balance."""


@attrs.frozen
class Ok:
    """A command succeeded; the new balance."""

    balance: int


@attrs.frozen
class Insufficient:
    """A withdrawal larger than the balance."""

    balance: int
    wanted: int


BankMsg = Credit | Debit | GetBalance
BANK_MSGS = st.one_of(st.builds(Credit, AMOUNTS), st.builds(Debit, AMOUNTS), st.just(GetBalance()))


def bank_account(msg: BankMsg, balance: int) -> tuple[int, Ok | Insufficient]:
    """pykka: the bank account actor of every actor tutorial."""
    match msg:
        case Credit(amount):
            balance += amount
        case Debit(amount):
            if amount > balance:
                return balance, Insufficient(balance, amount)
            balance -= amount
        case GetBalance():
            pass
    return balance, Ok(balance)


CORPUS.add(bank_account, 0, BANK_MSGS)


def bank_account_validating(msg: BankMsg, balance: int) -> tuple[int, int]:
    """pykka: the account that raises on a negative amount or an overdraft (the ask fails)."""
    if isinstance(msg, Credit):
        if msg.amount <= 0:
            raise ValueError(f"deposit must be positive, got {msg.amount}")
        balance += msg.amount
    elif isinstance(msg, Debit):
        if msg.amount > balance:
            raise ValueError("insufficient funds")
        balance -= msg.amount
    return balance, balance


CORPUS.add(bank_account_validating, 0, BANK_MSGS)


@attrs.frozen
class Account:
    """An account record with its history, as an actor's ``self`` fields."""

    owner: str
    balance: int
    history: list[int] = attrs.field(factory=list)

    def can_withdraw(self, amount: int) -> bool:
        """Whether ``amount`` can be taken without an overdraft."""
        return 0 <= amount <= self.balance

    def apply(self, amount: int) -> Account:
        """The account after a signed change."""
        return Account(self.owner, self.balance + amount, [*self.history, amount])


def bank_account_methods(msg: BankMsg, acct: Account) -> tuple[Account, str]:
    """pykka: the account with methods on its state class (``can_withdraw``, ``apply``)."""
    match msg:
        case Credit(amount):
            acct = acct.apply(amount)
        case Debit(amount):
            if not acct.can_withdraw(amount):
                return acct, f"{acct.owner}: cannot withdraw {amount}"
            acct = acct.apply(-amount)
        case GetBalance():
            return acct, f"{acct.owner}: {acct.balance} after {len(acct.history)} operations"
    return acct, "ok"


CORPUS.add(bank_account_methods, Account("ann", 0), BANK_MSGS)


@attrs.frozen
class Transfer:
    """Move ``amount`` from one account to another."""

    source: str
    target: str
    amount: int


def bank_ledger(msg: Transfer, accounts: dict[str, int]) -> tuple[dict[str, int], bool]:
    """thespian: a bank of accounts; a transfer is all or nothing."""
    if msg.source == msg.target or msg.amount <= 0:
        return accounts, False
    if accounts.get(msg.source, 0) < msg.amount:
        return accounts, False
    accounts[msg.source] -= msg.amount
    accounts[msg.target] = accounts.get(msg.target, 0) + msg.amount
    return accounts, True


CORPUS.add(
    bank_ledger,
    {"a": 10, "b": 10, "c": 0},
    st.builds(Transfer, KEYS, KEYS, st.integers(-1, 12)),
)


# -- other actors ----------------------------------------------------------------------


@attrs.frozen
class Hello:
    """thespian's hello-world message."""

    name: str


def greeter(msg: Hello | str, greeted: int) -> tuple[int, str]:
    """thespian: hello world, answering strings and ``Hello`` records differently."""
    if isinstance(msg, str):
        return greeted, f"Hello, {msg}!"
    greeted += 1
    return greeted, f"Hello again, {msg.name} (#{greeted})"


CORPUS.add(greeter, 0, st.one_of(st.builds(Hello, KEYS), KEYS))


def ping_pong(msg: str, count: int) -> tuple[int, str | None]:
    """pykka: ping-pong; replies pong to ping until ten pings, then stops answering."""
    if msg == "ping" and count < 10:
        return count + 1, "pong"
    if msg == "reset":
        return 0, None
    return count, None


CORPUS.add(ping_pong, 0, st.sampled_from(["ping", "reset", "other"]))


@attrs.frozen
class Subscribe:
    """Add a subscriber."""

    who: str


@attrs.frozen
class Unsubscribe:
    """Remove a subscriber."""

    who: str


@attrs.frozen
class Publish:
    """Send ``text`` to every subscriber."""

    text: str


PubSubMsg = Subscribe | Unsubscribe | Publish


def pubsub_broker(msg: PubSubMsg, subs: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """pykka: a broker keeping subscribers in order, fanning out each publication."""
    match msg:
        case Subscribe(who) if who not in subs:
            subs.append(who)
        case Unsubscribe(who) if who in subs:
            subs.remove(who)
        case Publish(text):
            return subs, [(who, text) for who in subs]
    return subs, []


CORPUS.add(
    pubsub_broker,
    [],
    st.one_of(st.builds(Subscribe, KEYS), st.builds(Unsubscribe, KEYS), st.builds(Publish, KEYS)),
)


def pubsub_topics(
    msg: tuple[str, str, str], topics: dict[str, set[str]]
) -> tuple[dict[str, set[str]], int]:
    """thespian: topic subscriptions as sets; replies with the number of deliveries."""
    op, topic, who = msg
    if op == "sub":
        topics.setdefault(topic, set()).add(who)
        return topics, 0
    if op == "unsub":
        topics.get(topic, set()).discard(who)
        return topics, 0
    return topics, len(topics.get(topic, set()))


CORPUS.add(
    pubsub_topics,
    {},
    st.tuples(st.sampled_from(["sub", "unsub", "pub"]), st.sampled_from(["t1", "t2"]), KEYS),
)


@attrs.frozen
class Job:
    """A job for the pool."""

    id: int
    cost: int


def round_robin_dispatcher(job: Job, s: tuple[int, list[int]]) -> tuple[tuple[int, list[int]], int]:
    """thespian: a dispatcher handing jobs to three workers in turn, counting each one's load."""
    nxt, load = s
    worker = nxt
    load[worker] += job.cost
    return ((nxt + 1) % len(load), load), worker


CORPUS.add(
    round_robin_dispatcher, (0, [0, 0, 0]), st.builds(Job, st.integers(0, 9), st.integers(1, 5))
)


def least_loaded_dispatcher(job: Job, load: list[int]) -> tuple[list[int], int]:
    """thespian: a dispatcher choosing the least loaded worker (``min`` with ``key=``)."""
    worker = min(range(len(load)), key=lambda i: load[i])
    load[worker] += job.cost
    return load, worker


CORPUS.add(least_loaded_dispatcher, [0, 0, 0], st.builds(Job, st.integers(0, 9), st.integers(1, 5)))


@attrs.frozen
class Lock:
    """A request for the lock by ``owner``."""

    owner: str


@attrs.frozen
class Unlock:
    """A release of the lock by ``owner``."""

    owner: str


def lock_manager(
    msg: Lock | Unlock, s: tuple[str | None, list[str]]
) -> tuple[tuple[str | None, list[str]], str]:
    """pykka: a lock actor with a wait queue; release hands the lock to the next waiter."""
    holder, waiting = s
    match msg:
        case Lock(owner):
            if holder is None:
                return (owner, waiting), f"granted {owner}"
            if owner != holder and owner not in waiting:
                waiting.append(owner)
            return (holder, waiting), f"queued {owner}"
        case Unlock(owner):
            if owner != holder:
                return (holder, waiting), f"{owner} does not hold the lock"
            if waiting:
                nxt = waiting.pop(0)
                return (nxt, waiting), f"granted {nxt}"
            return (None, waiting), "free"


CORPUS.add(lock_manager, (None, []), st.one_of(st.builds(Lock, KEYS), st.builds(Unlock, KEYS)))


@attrs.frozen
class Chat:
    """A chat room: members and the last messages."""

    members: list[str]
    log: list[str]


def chat_room(msg: tuple[str, str, str], room: Chat) -> tuple[Chat, list[str]]:
    """pykka: a chat room actor: join, leave, say (members only), keeping the last three lines."""
    op, who, text = msg
    if op == "join":
        if who in room.members:
            return room, [f"{who} is already here"]
        room.members.append(who)
        return room, [f"{who} joined"]
    if op == "leave":
        if who in room.members:
            room.members.remove(who)
        return room, [f"{who} left"]
    if who not in room.members:
        return room, []
    line = f"<{who}> {text}"
    return Chat(room.members, [*room.log, line][-3:]), [*room.log, line]


CORPUS.add(
    chat_room,
    Chat([], []),
    st.tuples(st.sampled_from(["join", "leave", "say"]), KEYS, st.sampled_from(["hi", "yo"])),
)


def supervisor_counter(
    msg: tuple[str, str], restarts: dict[str, int]
) -> tuple[dict[str, int], str]:
    """thespian: a supervisor counting child failures, giving up on a child after three."""
    event, child = msg
    if event == "failed":
        restarts[child] = restarts.get(child, 0) + 1
        if restarts[child] > 3:
            return restarts, f"giving up on {child}"
        return restarts, f"restart {child} ({restarts[child]})"
    restarts.pop(child, None)
    return restarts, f"{child} healthy"


CORPUS.add(supervisor_counter, {}, st.tuples(st.sampled_from(["failed", "ok"]), KEYS))


def request_correlator(
    msg: tuple[str, int, str], pending: dict[int, str]
) -> tuple[dict[int, str], str | None]:
    """pykka: a proxy matching replies to requests by an int correlation id."""
    kind, corr, body = msg
    if kind == "request":
        pending[corr] = body
        return pending, None
    if corr not in pending:
        return pending, f"unexpected reply {corr}"
    request = pending.pop(corr)
    return pending, f"{request} -> {body}"


CORPUS.add(
    request_correlator,
    {},
    st.tuples(st.sampled_from(["request", "reply"]), st.integers(0, 3), KEYS),
)


def cache_actor(
    msg: tuple[str, str], s: tuple[dict[str, str], int, int]
) -> tuple[tuple[dict[str, str], int, int], str]:
    """pykka: a memoising actor: ``computes`` upper-case values, counting hits and misses."""
    _, key = msg
    cache, hits, misses = s
    if key in cache:
        return (cache, hits + 1, misses), cache[key]
    value = key.upper() * 2
    cache[key] = value
    return (cache, hits, misses + 1), value


CORPUS.add(cache_actor, ({}, 0, 0), st.tuples(st.just("get"), KEYS))


@attrs.frozen
class Philosopher:
    """A dining philosopher's request: take or put down both forks."""

    seat: int
    take: bool


def fork_table(msg: Philosopher, forks: list[bool]) -> tuple[list[bool], bool]:
    """thespian: the dining philosophers' waiter; both forks or none."""
    left, right = msg.seat, (msg.seat + 1) % len(forks)
    if msg.take:
        if forks[left] or forks[right]:
            return forks, False
        forks[left] = forks[right] = True
        return forks, True
    forks[left] = forks[right] = False
    return forks, True


CORPUS.add(fork_table, [False] * 5, st.builds(Philosopher, st.integers(0, 4), st.booleans()))


def counter_actor_ask_tell(
    msg: tuple[str, int], s: dict[str, int]
) -> tuple[dict[str, int], int | None]:
    """pykka: a counter with ``tell`` (add, no reply) and ``ask`` (reply with the value)."""
    kind, n = msg
    if kind == "tell":
        s["value"] = s.get("value", 0) + n
        return s, None
    return s, s.get("value", 0)


CORPUS.add(counter_actor_ask_tell, {}, st.tuples(st.sampled_from(["tell", "ask"]), AMOUNTS))


def registry_actor(msg: tuple[str, str, int], names: dict[str, int]) -> tuple[dict[str, int], int]:
    """thespian: a name registry: register fails on a taken name, lookup returns -1 when absent."""
    op, name, addr = msg
    if op == "register":
        if name in names:
            raise KeyError(f"{name} already registered")
        names[name] = addr
        return names, addr
    if op == "unregister":
        return names, names.pop(name, -1)
    return names, names.get(name, -1)


CORPUS.add(
    registry_actor,
    {},
    st.tuples(st.sampled_from(["register", "unregister", "lookup"]), KEYS, st.integers(0, 9)),
)
