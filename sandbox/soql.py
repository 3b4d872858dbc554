"""The SOQL subset the writers use: SELECT fields (one-level relationships, COUNT()) FROM object
[WHERE f = v / != / IN (...) / NOT IN (...) joined by AND] [ORDER BY f [ASC|DESC]] [LIMIT n]."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from integration.salesforce_ids import id18, is_id

TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<op>!=|<=|>=|=|<|>|\(|\)|,)|(?P<word>[A-Za-z_][\w.]*(?:\(\))?))"
)
KEYWORDS = {"select", "from", "where", "and", "in", "not", "order", "by", "asc", "desc", "limit"}


class SoqlError(ValueError):
    """errorCode MALFORMED_QUERY, INVALID_FIELD or INVALID_TYPE with the message to send."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Condition:
    field: str
    op: str  # =, !=, IN, NOT IN
    values: list[Any]

    def __post_init__(self) -> None:
        self.wanted = frozenset(_normalize(v) for v in self.values)


@dataclass
class Query:
    fields: list[str]
    sobject: str
    count: bool = False
    where: list[Condition] = field(default_factory=list)
    order_by: str | None = None
    descending: bool = False
    limit: int | None = None


def _tokens(soql: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    soql = soql.strip()
    while pos < len(soql):
        match = TOKEN.match(soql, pos)
        if not match or match.end() == pos:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {soql[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, soql: str) -> None:
        self.tokens = _tokens(soql)
        self.pos = 0

    def peek(self) -> str:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else ""

    def take(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise SoqlError("MALFORMED_QUERY", "unexpected end of query")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        if self.peek().lower() == word:
            self.pos += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.keyword(word):
            raise SoqlError("MALFORMED_QUERY", f"expecting '{word.upper()}', found '{self.peek()}'")

    def name(self) -> str:
        kind, text = self.take()
        if kind != "word" or text.lower() in KEYWORDS:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text}'")
        return text

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "string":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "number":
            return float(text)
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        if text.lower() == "null":
            return None
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text}'")

    def condition(self) -> Condition:
        name = self.name()
        negate = self.keyword("not")
        if self.keyword("in"):
            if self.take()[1] != "(":
                raise SoqlError("MALFORMED_QUERY", "expecting '(' after IN")
            values = [self.value()]
            while self.peek() == ",":
                self.take()
                values.append(self.value())
            if self.take()[1] != ")":
                raise SoqlError("MALFORMED_QUERY", "expecting ')' to close IN")
            return Condition(name, "NOT IN" if negate else "IN", values)
        op = self.take()[1]
        if negate or op not in ("=", "!="):
            raise SoqlError("MALFORMED_QUERY", f"unsupported operator '{op}' in this sandbox")
        return Condition(name, op, [self.value()])

    def query(self) -> Query:
        self.expect("select")
        fields = [self.name()]
        while self.peek() == ",":
            self.take()
            fields.append(self.name())
        self.expect("from")
        query = Query(fields, self.name())
        if [f.lower() for f in fields] == ["count()"]:
            query.count, query.fields = True, []
        if self.keyword("where"):
            query.where.append(self.condition())
            while self.keyword("and"):
                query.where.append(self.condition())
        if self.keyword("order"):
            self.expect("by")
            query.order_by = self.name()
            query.descending = self.keyword("desc") or (self.keyword("asc") and False)
        if self.keyword("limit"):
            kind, text = self.take()
            if kind != "number":
                raise SoqlError("MALFORMED_QUERY", f"LIMIT expects a number, found '{text}'")
            query.limit = int(float(text))
        if self.pos != len(self.tokens):
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{self.peek()}'")
        return query


def parse(soql: str) -> Query:
    return _Parser(soql).query()


def matches(value: Any, condition: Condition) -> bool:
    hit = _normalize(value) in condition.wanted
    return hit if condition.op in ("=", "IN") else not hit


def _normalize(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and len(value) in (15, 18) and is_id(value):
        return id18(value)
    return value
