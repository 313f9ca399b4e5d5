"""The docs build: every notebook and page rendered, and the links between them checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from nbformat.v4 import new_markdown_cell, new_notebook


def _notebook(path: Path, *markdown: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[new_markdown_cell(m) for m in markdown]), path)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A small repository: two notebooks linking each other, a README and a data file."""
    _notebook(
        tmp_path / "notebooks" / "00_tour.ipynb",
        "# Tour\n\nNext: [slices](01_slices.ipynb#Placement), [the README](../README.md), "
        "[the fleet](../data/fleet.toml), [below](#Tour), [PyPI](https://pypi.org/).",
    )
    _notebook(tmp_path / "notebooks" / "01_slices.ipynb", "# Slices\n\n## Placement\n\nBack to the [tour](00_tour.ipynb).")
    (tmp_path / "README.md").write_text("# Read me\n\n## How to scale out\n\nStart with the [tour](notebooks/00_tour.ipynb).\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "fleet.toml").write_text("[[nodes]]\nname = 'a'\n")
    return tmp_path


def test_a_site_with_good_links_builds(build_docs: ModuleType, repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    report = build_docs.build(repo, out)
    assert report.broken == []
    assert (report.pages, report.external) == (3, 1)
    for page in ("index.html", "notebooks/00_tour.html", "notebooks/01_slices.html", "README.html"):
        assert (out / page).is_file(), page
    tour = (out / "notebooks" / "00_tour.html").read_text()
    assert 'href="01_slices.html#Placement"' in tour  # .ipynb links point at the rendered page
    assert 'href="../README.html"' in tour
    assert (out / "data" / "fleet.toml").is_file()  # a linked repository file travels with the site
    assert "Slices" in (out / "index.html").read_text()


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        ("[missing](02_jobs.ipynb)", "notebooks/02_jobs.ipynb does not exist"),
        ("[bad anchor](01_slices.ipynb#Quotas)", "has no heading 'Quotas'"),
        ("[same page](#Nowhere)", "this page has no heading or id 'Nowhere'"),
        ("[outside](../../elsewhere/x.md)", "is outside the repository"),
        ("[absolute](/etc/hostname)", "absolute paths break"),
        ("[readme anchor](../README.md#how-to-scale-up)", "README.md has no heading 'how-to-scale-up'"),
    ],
)
def test_a_broken_link_is_caught(build_docs: ModuleType, repo: Path, link: str, reason: str) -> None:
    _notebook(repo / "notebooks" / "00_tour.ipynb", f"# Tour\n\n{link}")
    report = build_docs.build(repo, write=False)
    assert len(report.broken) == 1, report.broken
    broken = report.broken[0]
    assert broken.page == "notebooks/00_tour.ipynb"
    assert reason in broken.reason
    assert "00_tour.ipynb" in str(broken) and link.split("(")[1].rstrip(")") in str(broken)


def test_markdown_headings_get_github_anchors(build_docs: ModuleType, repo: Path) -> None:
    _notebook(repo / "notebooks" / "00_tour.ipynb", "# Tour\n\n[scale out](../README.md#how-to-scale-out)")
    assert build_docs.build(repo, write=False).broken == []


def test_the_command_fails_and_names_the_broken_link(build_docs: ModuleType, repo: Path, tmp_path: Path) -> None:
    _notebook(repo / "notebooks" / "00_tour.ipynb", "# Tour\n\n[jobs](02_jobs.ipynb)")
    script = Path(build_docs.__file__)
    result = subprocess.run(
        [sys.executable, str(script), "--root", str(repo), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "broken: notebooks/00_tour.ipynb: link '02_jobs.ipynb': notebooks/02_jobs.ipynb does not exist" in result.stderr
    assert "1 broken link(s)" in result.stdout


def test_the_repositorys_docs_have_no_broken_links(build_docs: ModuleType, repo_root: Path) -> None:
    """What `make docs` checks, on the real notebooks, README and docs/."""
    report = build_docs.build(repo_root, write=False)
    assert report.pages >= 1
    assert report.broken == [], "\n".join(map(str, report.broken))


def test_the_readme_sections_staging_file_is_checked_from_the_root(build_docs: ModuleType, repo: Path) -> None:
    staging = repo / "docs" / "README-sections.md"
    staging.parent.mkdir()
    staging.write_text("## Where\n\nThe [tour](notebooks/00_tour.ipynb) and the [guide](docs/GUIDE.md).\n")
    report = build_docs.build(repo, write=False)
    assert [(b.page, b.href) for b in report.broken] == [("docs/README-sections.md", "docs/GUIDE.md")]
    assert report.pages == 3  # checked, but not a page of the site


@pytest.mark.parametrize(
    ("cells", "problems"),
    [
        (["# Slices\n\nWhat you will learn: ...", "## Where to go next\n\n[Jobs](02_jobs.ipynb)"], []),
        (["# Slices", "Next: the [README](../README.md#scaling-out)."], []),
        (["Some text without a title", "[Jobs](02_jobs.ipynb)"], ["first cell"]),
        (["# Slices", "## Where to go next\n\nSee the [docs](https://example.org)."], ["where to go next"]),
    ],
    ids=["good", "readme-next", "no-title", "no-next-link"],
)
def test_a_notebook_opens_with_what_it_teaches_and_ends_with_where_next(
    build_docs: ModuleType, tmp_path: Path, cells: list[str], problems: list[str]
) -> None:
    path = tmp_path / "notebooks" / "01_slices.ipynb"
    _notebook(path, *cells)
    found = build_docs.structure_problems(path)
    assert len(found) == len(problems)
    for want, got in zip(problems, found, strict=True):
        assert want in got


def test_an_nbval_marker_with_words_after_it_is_caught(build_docs: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "notebooks" / "01_slices.ipynb"
    nb = new_notebook(cells=[
        new_markdown_cell("# Slices"),
        nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT  (timings)\nprint(1)"),
        nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\n# (timings)\nprint(2)"),
        new_markdown_cell("Next: [jobs](02_jobs.ipynb)"),
    ])
    path.parent.mkdir(parents=True)
    nbformat.write(nb, str(path))
    assert build_docs.structure_problems(path) == [
        "cell 1: '# NBVAL_IGNORE_OUTPUT  (timings)' is not a marker nbval knows; put the marker alone on its line"
    ]


def test_every_notebook_of_the_guide_has_its_opening_and_its_next_step(build_docs: ModuleType, repo_root: Path) -> None:
    lacking = {
        nb.name: build_docs.structure_problems(nb)
        for nb in sorted((repo_root / "notebooks").glob("*.ipynb"))
        if build_docs.structure_problems(nb)
    }
    assert lacking == {}


def test_anchors_of_headings_with_non_ascii_characters_resolve(build_docs: ModuleType, repo: Path) -> None:
    """nbconvert percent-encodes such ids; links written either way must resolve."""
    _notebook(repo / "notebooks" / "01_slices.ipynb", "# Slices — on 2×8 H100\n\n[tour](00_tour.ipynb)")
    _notebook(
        repo / "notebooks" / "00_tour.ipynb",
        "# Tour\n\n[a](01_slices.ipynb#Slices-—-on-2×8-H100) [b](01_slices.ipynb#Slices-%E2%80%94-on-2%C3%978-H100)",
    )
    assert build_docs.build(repo, write=False).broken == []
