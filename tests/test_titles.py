"""Seniority parsing of job titles: a table of real titles in English (with abbreviations) and in
German, French, Spanish, Portuguese, Dutch, Italian, Chinese and Japanese, titles that only
mention someone else's role, and properties that must hold for any title (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.titles import Seniority, normalize, seniority

IC, MANAGER, DIRECTOR, VP, C_LEVEL = (
    Seniority.INDIVIDUAL,
    Seniority.MANAGER,
    Seniority.DIRECTOR,
    Seniority.VP,
    Seniority.C_LEVEL,
)

TITLES = [
    # English, with the usual abbreviations
    ("Software Engineer", IC),
    ("Senior Software Engineer", IC),
    ("Tech Lead", IC),
    ("Product Owner", IC),
    ("Management Consultant", IC),
    ("Directory Services Engineer", IC),
    ("Marketing Manager", MANAGER),
    ("Sr. Manager, Sales Ops", MANAGER),
    ("Mgr. Customer Support", MANAGER),
    ("Team Lead, Support", MANAGER),
    ("Customer Success Supervisor", MANAGER),
    ("Associate Director, Partnerships", MANAGER),
    ("Director of Marketing", DIRECTOR),
    ("Sr. Dir. Engineering", DIRECTOR),
    ("Dir. Product", DIRECTOR),
    ("Head of Growth", DIRECTOR),
    ("General Manager EMEA", DIRECTOR),
    ("Chief of Staff", DIRECTOR),
    ("AVP Finance", DIRECTOR),
    ("Executive Director", DIRECTOR),
    ("VP Marketing", VP),
    ("VP, Sales", VP),
    ("V.P. Sales", VP),
    ("SVP Sales", VP),
    ("EVP Operations", VP),
    ("Vice President of Engineering", VP),
    ("Senior Vice-President, Customer Success", VP),
    ("Deputy CEO", VP),
    ("Vice Chairman", VP),
    ("Chief Marketing Officer", C_LEVEL),
    ("Chief Executive Officer", C_LEVEL),
    ("Chief Revenue Officer (CRO)", C_LEVEL),
    ("CEO", C_LEVEL),
    ("CTO & Co-Founder", C_LEVEL),
    ("CxO", C_LEVEL),
    ("CISO", C_LEVEL),
    ("Founder", C_LEVEL),
    ("President", C_LEVEL),
    ("Managing Director", C_LEVEL),
    ("Chairman of the Board", C_LEVEL),
    ("Owner", C_LEVEL),
    ("Interim CFO", C_LEVEL),
    # German
    ("Teamleiterin Kundenservice", MANAGER),
    ("Projektleiter", MANAGER),
    ("Produktmanager", MANAGER),
    ("Key-Account-Manager", MANAGER),
    ("Leiter Vertrieb", DIRECTOR),
    ("Leiterin Marketing", DIRECTOR),
    ("Vertriebsleiter", DIRECTOR),
    ("Abteilungsleiter IT", DIRECTOR),
    ("Leitung Einkauf", DIRECTOR),
    ("Vertriebsdirektor", DIRECTOR),
    ("Bereichsleiterin Finanzen", VP),
    ("Stellvertretender Geschäftsführer", VP),
    ("Geschäftsführer", C_LEVEL),
    ("Geschäftsführerin", C_LEVEL),
    ("Geschaeftsfuehrer", C_LEVEL),
    ("Vorstand Finanzen", C_LEVEL),
    ("Vorstandsvorsitzender", C_LEVEL),
    ("Mitglied der Geschäftsleitung", C_LEVEL),
    ("Inhaber", C_LEVEL),
    ("Begleiter", IC),
    # French
    ("Responsable marketing", MANAGER),
    ("Chef de projet", MANAGER),
    ("Directeur adjoint", MANAGER),
    ("Directeur Marketing", DIRECTOR),
    ("Directrice commerciale", DIRECTOR),
    ("Vice-Président Ventes", VP),
    ("Directrice générale adjointe", VP),
    ("Directeur général", C_LEVEL),
    ("PDG", C_LEVEL),
    ("Président-directeur général", C_LEVEL),
    ("Fondatrice", C_LEVEL),
    # Spanish
    ("Gerente de Marketing", MANAGER),
    ("Jefe de Ventas", MANAGER),
    ("Jefa de Proyecto", MANAGER),
    ("Subdirector Comercial", MANAGER),
    ("Director de Ventas", DIRECTOR),
    ("Directora de Operaciones", DIRECTOR),
    ("Vicepresidente de Operaciones", VP),
    ("Directora General", C_LEVEL),
    ("Gerente General", C_LEVEL),
    ("Consejero Delegado", C_LEVEL),
    ("Director Ejecutivo", C_LEVEL),
    # Portuguese
    ("Coordenador de TI", IC),
    ("Gerente de Projetos", MANAGER),
    ("Gestora de Contas", MANAGER),
    ("Diretor de Vendas", DIRECTOR),
    ("Diretora Comercial", DIRECTOR),
    ("Vice-Presidente de Vendas", VP),
    ("Diretor-Presidente", C_LEVEL),
    ("Diretor Geral", C_LEVEL),
    # Dutch
    ("Teamleider", MANAGER),
    ("Adjunct-directeur", MANAGER),
    ("Hoofd Marketing", DIRECTOR),
    ("Afdelingshoofd", DIRECTOR),
    ("Directeur", DIRECTOR),
    ("Algemeen Directeur", C_LEVEL),
    ("Bestuursvoorzitter", C_LEVEL),
    # Italian
    ("Responsabile Vendite", MANAGER),
    ("Vicedirettore", MANAGER),
    ("Direttore Commerciale", DIRECTOR),
    ("Vicepresidente", VP),
    ("Direttore Generale", C_LEVEL),
    ("Amministratore Delegato", C_LEVEL),
    ("Presidente", C_LEVEL),
    # Chinese and Japanese
    ("经理", MANAGER),
    ("销售总监", DIRECTOR),
    ("副总经理", VP),
    ("总经理", C_LEVEL),
    ("首席技术官", C_LEVEL),
    ("課長", MANAGER),
    ("副部長", MANAGER),
    ("部長", DIRECTOR),
    ("執行役員", VP),
    ("代表取締役社長", C_LEVEL),
]

# Titles that name someone else's role: the holder is not that senior.
ON_BEHALF = [
    "Executive Assistant to the CEO",
    "Assistant to the VP of Sales",
    "EA to the Managing Director",
    "Assistenz der Geschäftsführung",
    "Vorstandsassistentin",
    "Assistante de direction",
    "Secretaria de Dirección General",
    "Referentin der Geschäftsführung",
]


@pytest.mark.parametrize(("title", "level"), TITLES)
def test_real_titles(title: str, level: Seniority):
    assert seniority(title) == level


@pytest.mark.parametrize("title", ON_BEHALF)
def test_a_title_on_behalf_of_someone_else_is_not_their_seniority(title: str):
    assert seniority(title) == IC


@pytest.mark.parametrize("title", [None, "", "   ", "エンジニア", "—"])
def test_no_readable_title_has_no_seniority(title: str | None):
    assert seniority(title) is None


def test_levels_order_and_labels():
    assert IC < MANAGER < DIRECTOR < VP < C_LEVEL
    assert [level.label for level in Seniority] == [
        "individual contributor",
        "manager",
        "director",
        "VP",
        "C-level",
    ]
    assert Seniority.named("vp") is VP
    assert Seniority.named("c_level") is C_LEVEL


def test_normalize_folds_case_accents_and_punctuation():
    assert normalize("  Sr. Vice-Président,  R&D ") == " sr vice president r d "
    assert normalize("Geschäftsführerin / Straße") == " geschaftsfuhrerin strasse "


def test_the_highest_of_several_roles_counts():
    assert seniority("VP Sales & General Manager, EMEA") == VP
    assert seniority("Head of Data / Chief Data Officer") == C_LEVEL
    assert seniority("Founder, Engineer") == C_LEVEL


# "Owner" counts only as the whole title ("Product Owner" is not one), so no prefix for it.
ENGLISH = [title for title, _ in TITLES[: TITLES.index(("Teamleiterin Kundenservice", MANAGER))]]
ENGLISH.remove("Owner")
FUNCTIONS = ["Sales", "Marketing", "Engineering", "Customer Success", "Finance", "Operations"]


@given(st.sampled_from([t for t, _ in TITLES]))
def test_case_and_spacing_do_not_matter(title: str):
    assert seniority(title.upper()) == seniority(title)
    assert seniority(f"  {title}\t") == seniority(title)


@given(st.sampled_from(ENGLISH), st.sampled_from(["Senior", "Sr.", "Global", "Regional"]))
def test_a_grade_prefix_does_not_change_the_level(title: str, prefix: str):
    assert seniority(f"{prefix} {title}") == seniority(title)


@given(st.sampled_from(FUNCTIONS))
def test_the_ladder_of_one_function_rises(function: str):
    ladder = [
        f"{function} Analyst",
        f"{function} Manager",
        f"Director of {function}",
        f"VP {function}",
        f"Chief {function} Officer",
    ]
    assert [seniority(title) for title in ladder] == list(Seniority)


@given(st.text(max_size=60))
def test_any_text_yields_a_level_or_none(text: str):
    assert seniority(text) in (None, *Seniority)


@given(st.sampled_from([t for t, level in TITLES if level > IC and t.isascii()]))
def test_a_deputy_is_never_above_the_title_itself(title: str):
    deputy = seniority(f"Deputy {title}")
    assert deputy is not None
    assert deputy <= seniority(title)  # type: ignore[operator]
