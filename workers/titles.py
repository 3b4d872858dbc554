"""Seniority of a job title (individual < manager < director < VP < C-level), from English
titles with their usual abbreviations and from common German, French, Spanish, Portuguese,
Dutch, Italian, Chinese and Japanese titles."""

from __future__ import annotations

import re
import unicodedata
from enum import IntEnum


class Seniority(IntEnum):
    INDIVIDUAL = 0
    MANAGER = 1
    DIRECTOR = 2
    VP = 3
    C_LEVEL = 4

    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def named(cls, name: str) -> Seniority:
        """The level of a config name: individual | manager | director | vp | c_level."""
        return cls[name.upper()]


_LABELS = {
    Seniority.INDIVIDUAL: "individual contributor",
    Seniority.MANAGER: "manager",
    Seniority.DIRECTOR: "director",
    Seniority.VP: "VP",
    Seniority.C_LEVEL: "C-level",
}

# Phrases over the normalized title (lower case, accents dropped, punctuation as single spaces,
# padded with one space each side). Deputy and sub forms that merely contain a higher title
# ("vice president", "subdirector") are excluded here and matched at their own level.
_PHRASES: dict[Seniority, tuple[str, ...]] = {
    Seniority.C_LEVEL: (
        r"chief( \w+){1,4} officer",
        r"chief executive",
        r"c(e|f|o|t|i|m|r|p|s|d|c|a|x|h|l|b|g|n)o",
        r"ciso|chro|cdao|caio",
        r"(co )?founder|cofounder|fondat(eur|rice|ore)|fundador(a)?|oprichter|grunder(in)?",
        r"chair(man|woman|person)|board chair",
        r"(?<!vice )(?<!vize )president(e|a|in)?|(?<!vice )(?<!vize )pr(a|ae)sident(in)?",
        r"managing director|general director|director(a)? general|diretor(a)? geral",
        r"direct(eur|rice) general(e)?|dirett(ore|rice) generale|algemeen directeur",
        r"director(a)? ejecutiv(o|a)|diretor(a)? presidente|gerente general",
        r"pdg|dg|amministratore delegato|consejer(o|a) delegad(o|a)",
        r"\w*geschaftsfuhr(er|erin|ung)|\w*geschaeftsfuehr(er|erin|ung)",
        r"geschaftsleit(er|erin|ung)|geschaeftsleit(er|erin|ung)",
        r"vorstand\w*|inhaber(in)?|bestuurder|bestuursvoorzitter|directeur eigenaar",
        r"(?<=^ )(co )?owner",
    ),
    Seniority.VP: (
        r"(s|e)?vp|((s|e) )?v p|vice president(e|a)?|vicepresident(e|a)?|vizepr(a|ae)sident(in)?",
        r"vize pr(a|ae)sident(in)?|\w*bereichsleit(er|erin|ung)|superintendente",
    ),
    Seniority.DIRECTOR: (
        r"director(a)?|dir|directeur|directrice|\w*direktor(in)?|diretor(a)?",
        r"dirett(ore|rice)|dirigente",
        r"head|\w+hoofd|hoofd|chief|general manager|gm|avp",
        r"(?<!team)(?<!gruppen)(?<!projekt)(?<!schicht)leit(er|erin|ung)",
        r"\w+(?<!team)(?<!gruppen)(?<!projekt)(?<!schicht)(?<!beg)leit(er|erin|ung)",
    ),
    Seniority.MANAGER: (
        r"\w*manager(in)?|mgr|supervisor(a)?|team lead(er)?|teamlead(er)?",
        r"(team|gruppen|projekt|schicht)leit(er|erin|ung)|teamleider|leidinggevende",
        r"gerente|gerant(e)?|responsable|responsabile|jef(e|a)|chef|capo|encargad(o|a)",
        r"gestor(a)?|subdirector(a)?|subdiretor(a)?",
        r"vice(direttore|direttrice|director(a)?|diretor(a)?|directeur|directrice)",
    ),
}

# A title naming someone else's role ("Executive Assistant to the CEO", "Assistenz der
# Geschäftsführung", "Vorstandsassistentin"): only the words before it describe the holder.
_ON_BEHALF = re.compile(
    r" ((assistant(e)?|assistente|secretary|secretaire|secretaria|pa|ea)"
    r" (to|of|for|de|du|des|a|al|di|da|do|della|del|van)"
    r"|\w*(assistent|assistenz|sekretar|referent)\w*) "
)
# A deputy or assistant right before (or, in Romance languages, right after) a title is one
# level below it: "Associate Director", "Deputy CEO", "directeur adjoint".
_BEFORE = frozenset(
    {"assistant", "associate", "deputy", "vice", "vize", "sub", "adjunct", "adjoint", "adjointe"}
    | {"stellvertretender", "stellvertretende", "stellv", "stv"}
)
_AFTER = frozenset({"adjoint", "adjointe", "adjunto", "adjunta", "aggiunto", "aggiunta", "adjunct"})
_CJK: tuple[tuple[Seniority, str], ...] = (
    (
        Seniority.C_LEVEL,
        r"首席.{0,4}官|(?<!副)总裁|(?<!副)总经理|(?<!副)社長|代表取締役|董事长|会長",
    ),
    (Seniority.VP, r"副总裁|副总经理|副社長|執行役員|本部長"),
    (Seniority.DIRECTOR, r"总监|(?<!副)部長|(?<!副)部长|取締役"),
    (Seniority.MANAGER, r"经理|課長|主管|副部長|副部长"),
)
_WORD = re.compile(r"[^\W_]+")
_COMPILED = tuple(
    (level, re.compile(rf"(?<= )(?:{pattern})(?= )"))
    for level, patterns in _PHRASES.items()
    for pattern in patterns
)
_CJK_COMPILED = tuple((level, re.compile(pattern)) for level, pattern in _CJK)


def normalize(title: str) -> str:
    """Lower case, accents dropped (ß -> ss), every run of other characters one space."""
    folded = unicodedata.normalize("NFKD", title.casefold())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return " " + " ".join(_WORD.findall(plain)) + " "


def seniority(title: str | None) -> Seniority | None:
    """The seniority a title states; None when there is no title or nothing readable in it."""
    if not title or not title.strip():
        return None
    text = normalize(title)
    behalf = _ON_BEHALF.search(text)
    if behalf:
        text = text[: behalf.start() + 1]
    cjk = [level for level, pattern in _CJK_COMPILED if pattern.search(title)]
    levels = [_adjusted(level, text, match) for level, p in _COMPILED for match in p.finditer(text)]
    if levels or cjk:
        return max([*levels, *cjk])
    return Seniority.INDIVIDUAL if re.search(r"[a-z]", text) or behalf else None


def _adjusted(level: Seniority, text: str, match: re.Match[str]) -> Seniority:
    before = text[: match.start()].split()
    after = text[match.end() :].split()
    lowered = (before and before[-1] in _BEFORE) or (after and after[0] in _AFTER)
    return Seniority(max(level - 1, 0)) if lowered else level
